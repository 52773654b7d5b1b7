"""The sign-off summary: read a results directory, build the model, write it three ways.

``signoff.html`` (self-contained, for people), ``signoff.md`` (for CI job summaries; appended to
``$GITHUB_STEP_SUMMARY`` when that is set) and ``signoff.json`` (for machines and for trends).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.journal import read_journal
from harness.report.junit import read_cases
from harness.report.results_dir.layout import ResultsLayout
from harness.report.signoff.assemble import build_model
from harness.report.signoff.html import render_html
from harness.report.signoff.markdown import render_markdown
from harness.report.signoff.model import Regression, SignoffModel

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class SignoffFiles:
    html: Path
    markdown: Path
    json: Path
    step_summary: Path | None


def evidence_links(layout: ResultsLayout) -> dict[str, str]:
    """Links the page's footer offers, only to what exists."""
    candidates = {
        "allure report": layout.allure_report / "index.html",
        "JUnit XML": layout.junit,
        "sign-off JSON": layout.signoff_json,
        "journal": layout.journal,
        "evidence": layout.evidence,
        "trends": layout.trends_json,
        "screenshots": layout.screenshots,
    }
    return {
        name: layout.relative(path) + ("/" if path.is_dir() else "")
        for name, path in candidates.items()
        if path.exists() or path == layout.signoff_json
    }


def build_signoff(layout: ResultsLayout, regressions: Sequence[Regression] = ()) -> SignoffModel:
    model = build_model(read_journal(layout.root), read_cases(layout.junit), evidence_links(layout))
    model = replace(model, results_dir=str(layout.root))
    return replace(model, regressions=tuple(regressions)) if regressions else model


def write_signoff(
    layout: ResultsLayout, model: SignoffModel, environ: Mapping[str, str] | None = None
) -> SignoffFiles:
    env = os.environ if environ is None else environ
    layout.root.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(model)
    _write(layout.signoff_html, render_html(model))
    _write(layout.signoff_md, markdown)
    _write(layout.signoff_json, json.dumps(model.to_dict(), indent=2, sort_keys=True))
    summary = Path(env[STEP_SUMMARY_ENV]) if env.get(STEP_SUMMARY_ENV) else None
    if summary is not None:
        # GitHub gathers every step's summary from this one file: append, never overwrite.
        with summary.open("a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    return SignoffFiles(layout.signoff_html, layout.signoff_md, layout.signoff_json, summary)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
