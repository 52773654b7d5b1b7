"""JUnit XML: bring pytest's file in line with the harness's outcomes, and read it back.

pytest calls every problem in a test body a ``<failure>`` and every problem in a fixture an
``<error>``, whatever its cause. CI systems read ``<error>`` as "the test could not run" and
``<failure>`` as "the product is wrong", which is exactly the broken/failed split, so
:func:`reconcile` renames the elements after the outcome the report plugin stored in each test
case's ``harness.outcome`` property and fixes the counts.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

OUTCOME_PROPERTY = "harness.outcome"
_WANTED = {"failed": "failure", "broken": "error"}


@dataclass(frozen=True)
class JUnitCase:
    classname: str
    name: str
    status: str  # passed | failure | error | skipped
    message: str
    properties: dict[str, str]

    @property
    def nodeid_hint(self) -> str:
        return "::".join(part for part in (self.classname, self.name) if part)


def _properties(case: ET.Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for prop in case.iterfind("properties/property"):
        found[prop.get("name", "")] = prop.get("value", "")
    return found


def reconcile(path: Path) -> int:
    """Rename ``<failure>``/``<error>`` after each case's harness outcome; returns how many changed."""
    if not path.is_file():
        return 0
    tree = ET.parse(path)
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            wanted = _WANTED.get(_properties(case).get(OUTCOME_PROPERTY, ""))
            if wanted is None:
                continue
            for child in case:
                if child.tag in ("failure", "error") and child.tag != wanted:
                    child.tag = wanted
                    changed += 1
        suite.set("failures", str(sum(1 for _ in suite.iter("failure"))))
        suite.set("errors", str(sum(1 for _ in suite.iter("error"))))
    if changed:
        tmp = path.with_name(path.name + ".tmp")
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    return changed


def read_cases(path: Path) -> list[JUnitCase]:
    if not path.is_file():
        return []
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = child.tag
                message = child.get("message", "") or (child.text or "").strip()[:500]
                break
        cases.append(
            JUnitCase(
                case.get("classname", ""), case.get("name", ""), status, message, _properties(case)
            )
        )
    return cases
