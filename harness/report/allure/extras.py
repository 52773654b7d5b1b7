"""The files allure-pytest does not write but the allure report reads from its results directory:
``environment.properties``, ``categories.json`` and ``executor.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.report.categories import categories_json
from harness.report.facts import RunFacts


def environment_entries(facts: RunFacts) -> dict[str, str]:
    entries = {
        "release.tarball": facts.release.tarball,
        "release.sha256": facts.release.sha256,
        "release.version": facts.release.version,
        "profile": facts.release.profile,
    }
    for image in facts.images:
        # One image keeps short keys; several get one pair of keys per target.
        prefix = "image" if len(facts.images) == 1 else f"image.{image.target}"
        entries[f"{prefix}.id"] = image.image_id or image.target
        entries[f"{prefix}.digest"] = image.digest
    entries |= {
        "host.os": facts.host.os,
        "harness.version": facts.host.harness_version,
        "git.revision": facts.host.git_revision,
        "python": facts.host.python,
    }
    entries |= {f"extra.{k}": v for k, v in facts.extra.items()}
    return {k: (v or "unknown") for k, v in entries.items()}


def _escape_property(text: str, is_key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char in "=:#!" or (char == " " and (is_key or index == 0)):
            out.append("\\" + char)
        elif ord(char) > 0x7E or ord(char) < 0x20:
            # java.util.Properties reads ISO-8859-1: anything else travels as a \\u escape.
            out.extend(f"\\u{unit:04x}" for unit in _utf16_units(char))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def render_properties(entries: Mapping[str, str]) -> str:
    return "".join(
        f"{_escape_property(k, True)}={_escape_property(v, False)}\n" for k, v in entries.items()
    )


def executor_info(
    facts: RunFacts, build_order: int, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    title = f"Portability: {facts.release.tarball or 'no release'}"
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run_url = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
        return {
            "name": "GitHub Actions",
            "type": "github",
            "url": server,
            "buildOrder": int(env.get("GITHUB_RUN_NUMBER", build_order) or build_order),
            "buildName": f"{env.get('GITHUB_WORKFLOW', 'workflow')} #{env.get('GITHUB_RUN_NUMBER', '')}",
            "buildUrl": run_url,
            "reportName": title,
        }
    return {
        "name": "harness (local)",
        "type": "local",
        "buildOrder": build_order,
        "buildName": f"local run {facts.run_id}".strip(),
        "reportName": title,
    }


def write_allure_extras(allure_results: Path, facts: RunFacts, build_order: int) -> None:
    allure_results.mkdir(parents=True, exist_ok=True)
    _write(allure_results / "environment.properties", render_properties(environment_entries(facts)))
    _write(allure_results / "categories.json", json.dumps(categories_json(), indent=2))
    _write(
        allure_results / "executor.json", json.dumps(executor_info(facts, build_order), indent=2)
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
