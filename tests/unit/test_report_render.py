"""Rendering the sign-off: self-contained HTML, Markdown for CI summaries, JSON; 1 and 4 images."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.journal import CheckRecord, GenericRecord, PhaseRecord
from harness.report.results_dir.layout import ResultsLayout
from harness.report.signoff.assemble import build_model
from harness.report.signoff.html import render_html
from harness.report.signoff.markdown import render_markdown
from harness.report.signoff.model import SignoffModel
from harness.report.signoff.write import write_signoff
from tests.unit.test_report_model import IMAGES, passing_run, records

HOSTILE = '<script>alert("x")</script> | pipe & "quote"'


class _Refs(HTMLParser):
    """Every URL the page would load or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "src" or (tag == "link" and name == "href"):
                self.loads.append(value or "")
            elif name == "href":
                self.links.append(value or "")


def failing_model(images: tuple[str, ...]) -> SignoffModel:
    items = passing_run(images) + [
        CheckRecord(
            images[-1],
            "install_offline",
            "failed",
            HOSTILE,
            area="install",
            evidence=("evidence/linux/installer output.txt",),
        ),
        PhaseRecord(images[-1], "serve", 2.5),
        GenericRecord("egress", {"attempts": [{"host": "pypi.invalid", "port": 443}]}, images[-1]),
    ]
    return build_model(
        records(*items),
        links={"JUnit XML": "junit.xml", "allure report": "allure-report/index.html"},
    )


@pytest.mark.parametrize("count", [1, 4])
def test_html_is_self_contained_and_leads_with_the_verdict(count: int) -> None:
    html = render_html(failing_model(IMAGES[:count]))
    refs = _Refs()
    refs.feed(html)
    assert refs.loads == [], "the page must not load anything"
    assert "script" not in refs.tags and "link" not in refs.tags and "img" not in refs.tags
    assert all(not re.match(r"^[a-z]+:", link) for link in refs.links), refs.links
    assert html.index("DO NOT SHIP") < html.index('id="matrix"') < html.index('id="failures"')
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", html[html.index('id="matrix"') :])
    assert header is not None and header.group(1).count("<th>") == count + 1


def test_html_escapes_messages_and_quotes_links() -> None:
    html = render_html(failing_model(IMAGES[:1]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="evidence/linux/installer%20output.txt"' in html
    assert (
        'href="#fail-linux-debian12-install-offline"' in html
        and 'id="fail-linux-debian12-install-offline"' in html
    )


def test_html_shows_timings_footprint_digests_and_egress() -> None:
    html = render_html(failing_model(IMAGES[:2]))
    for section in ("timings", "footprint", "digests", "egress", "environment"):
        assert f'id="{section}"' in html
    assert (
        "30.0 s" in html and "1010 B" in html and "111111111111" in html and "pypi.invalid" in html
    )


def test_ship_page_has_no_failure_section() -> None:
    html = render_html(build_model(records(*passing_run())))
    assert "<h1>SHIP</h1>" in html and 'id="failures"' not in html


def test_markdown_tables_survive_pipes_and_newlines() -> None:
    text = render_markdown(failing_model(IMAGES[:4]))
    assert text.startswith("## ⛔ DO NOT SHIP — ref-v1.0.0-x86_64-linux.tar.gz")
    row = next(line for line in text.splitlines() if line.startswith("| ❌ install_offline"))
    cells = re.split(r"(?<!\\)\|", row)[1:-1]
    assert len(cells) == 4 and "\\|" in row
    matrix_header = next(
        line for line in text.splitlines() if line.startswith("| Check | linux-debian12")
    )
    assert matrix_header.count("|") == len(IMAGES) + 2


def test_write_signoff_writes_three_forms_and_appends_the_step_summary(tmp_path: Path) -> None:
    layout = ResultsLayout(tmp_path / "results")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    model = failing_model(IMAGES[:1])
    files = write_signoff(layout, model, environ={"GITHUB_STEP_SUMMARY": str(summary)})
    assert files.html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert (
        json.loads(files.json.read_text(encoding="utf-8"))["verdict"]["headline"] == "DO NOT SHIP"
    )
    assert summary.read_text(encoding="utf-8").startswith("earlier step\n## ⛔ DO NOT SHIP")
    write_signoff(layout, model, environ={})
    assert summary.read_text(encoding="utf-8").count("DO NOT SHIP —") == 1


def test_json_holds_counts_and_every_check() -> None:
    data = failing_model(IMAGES[:2]).to_dict()
    assert data["counts"] == {"passed": 3, "failed": 1, "broken": 0, "skipped": 0}
    assert {c["check"] for c in data["checks"]} == {"install_offline", "determinism_repeat"}
    assert asdict(failing_model(IMAGES[:2]).verdict)["ship"] is False


def test_failures_with_one_cause_share_one_card() -> None:
    items = passing_run(IMAGES[:2]) + [
        CheckRecord(image, check, "failed", "installer tried pypi.invalid", area="install")
        for image in IMAGES[:2]
        for check in ("install_tree", "install_offline")
    ]
    model = build_model(records(*items))
    [group] = model.failure_groups()
    assert len(group.members) == 4
    assert group.where() == [("install_offline", IMAGES[:2]), ("install_tree", IMAGES[:2])]
    html = render_html(model)
    assert html.count('class="card card-failed"') == 1 and "4 checks, same cause" in html
    assert 'id="fail-linux-ubuntu24-install-tree"' in html


def test_static_checks_render_in_their_own_table() -> None:
    items = passing_run() + [
        CheckRecord("tarball", "static_area[elf]", "failed", "needs libfoo.so.1", area="static")
    ]
    model = build_model(records(*items))
    html = render_html(model)
    static = html[html.index('id="static"') :]
    assert "static_area[elf]" in static and 'href="#fail-tarball-static-area-elf-"' in static
    assert "static_area[elf]" not in html[html.index('id="matrix"') : html.index('id="static"')]
    assert "### Static checks of the tarball" in render_markdown(model)
