"""Reading a single-file allure report: the data files Allure 2 embeds in its ``index.html``.

``allure generate --single-file`` writes one page that opens from disk (a report of many files
fetches its data, which browsers refuse over ``file://``: "500 Failed to fetch"). The page carries
every data file as ``d('name','base64')``; the harness takes two of them back out: the
``history/`` files the next run's trend graphs start from, and ``data/categories.json`` to find
the first failure for a screenshot.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

_EMBEDDED = re.compile(r"""d\('([^']+)','([A-Za-z0-9+/=]*)'\)""")
HISTORY_PREFIX = "history/"


def embedded_files(index: Path) -> dict[str, bytes]:
    """Every data file the page embeds, by its path inside a report of many files."""
    found: dict[str, bytes] = {}
    for match in _EMBEDDED.finditer(index.read_text(encoding="utf-8", errors="replace")):
        try:
            found[match.group(1)] = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            continue  # not one of allure's data files: some other call that looks alike
    return found


def unpack(index: Path, into: Path, prefix: str = HISTORY_PREFIX) -> list[Path]:
    """Write the embedded files under ``prefix`` as files below ``into``; returns them."""
    written: list[Path] = []
    root = into.resolve()
    for name, data in embedded_files(index).items():
        if not name.startswith(prefix):
            continue
        target = (into / name).resolve()
        if not target.is_relative_to(root):
            continue  # a name that climbs out of the report is nobody's history file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written
