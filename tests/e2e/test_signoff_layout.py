"""The sign-off fits the window a release manager reads it in, and the allure report opens from
disk: both checked in headless Chromium, the way a person sees them. The screenshots are kept as
CI artefacts (``$HARNESS_ARTEFACTS_DIR``, else ``test-results/screenshots/``, which CI uploads).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.journal import CheckRecord, GenericRecord, PhaseRecord, Record
from harness.report.allure.cli import AllureCommandLine
from harness.report.browser import HeadlessChromium
from harness.report.results_dir.layout import ResultsLayout
from harness.report.screenshots import SIGNOFF_WIDTH, render_signoff, scroll_width
from harness.report.signoff.assemble import build_model
from harness.report.signoff.write import write_signoff
from tests.needs import unavailable
from tests.unit.test_report_model import passing_run, records

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS_ENV = "HARNESS_ARTEFACTS_DIR"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGES = (
    "linux-debian12",
    "linux-ubuntu24",
    "macos-sequoia-clean+tiles-v0.4.19-canary.20250101T000000-arm64-darwin.tar.gz@release-candidates",
    "macos-tahoe-clean+tiles-v0.4.19-canary.20250101T000000-arm64-darwin.tar.gz@release-candidates",
)


def artefacts() -> Path:
    folder = Path(os.environ.get(ARTEFACTS_ENV) or REPO / "test-results" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def chromium() -> HeadlessChromium:
    try:
        return HeadlessChromium.find()
    except HarnessError as exc:
        unavailable(f"Chromium unavailable: {exc}")  # CI installs it: there this fails
        raise


def crowded_run() -> list[Record]:
    """Four images with long names, one failure with 29 evidence files, skips with reasons."""
    target = IMAGES[-1]
    evidence = tuple(
        f"evidence/{target}/install_offline/attempt-{n:02d}-installer-output-with-a-long-name.txt"
        for n in range(29)
    )
    items = passing_run(IMAGES) + [
        CheckRecord(target, "install_offline", "failed", "the installer reached for pypi.invalid:443\n" * 3,
                    area="install", evidence=evidence, nodeid=f"harness/portability/test_install.py::"
                    f"test_install_offline[{target}]"),
        CheckRecord(IMAGES[0], "rosetta_absent", "skipped", "no macOS guest: Rosetta is a macOS matter",
                    area="install", nodeid="t::rosetta"),
        PhaseRecord(target, "serve", 2.5),
        GenericRecord("egress", {"attempts": [{"host": "pypi.invalid", "port": 443}]}, target),
    ]
    items += [
        GenericRecord("evidence", {"name": path.rsplit("/", 1)[-1], "path": path, "nodeid": ""}, target)
        for path in evidence
    ]
    return items


def test_the_signoff_fits_a_1280_px_window_without_scrolling_sideways(
    tmp_path: Path, chromium: HeadlessChromium
) -> None:
    layout = ResultsLayout(tmp_path / "results")
    model = build_model(records(*crowded_run()), links={"allure report": "allure-report/index.html"})
    write_signoff(layout, model, environ={})

    width = scroll_width(layout.signoff_html, chromium, width=SIGNOFF_WIDTH, height=900)
    shot = render_signoff(layout, chromium).screenshots["signoff"]
    kept = artefacts() / "signoff-1280.png"
    shutil.copyfile(shot, kept)
    assert kept.read_bytes().startswith(PNG_MAGIC)
    assert width <= SIGNOFF_WIDTH, f"the page is {width} px wide in a {SIGNOFF_WIDTH} px window (see {kept})"


ALLURE_RESULTS = (
    ("test_install_offline", "passed", ""),
    ("test_egress_none", "failed", "the release reached pypi.invalid:443"),
    ("test_rosetta_absent", "skipped", "no macOS guest"),
)


def _allure_results(folder: Path) -> None:
    folder.mkdir(parents=True)
    for index, (name, status, message) in enumerate(ALLURE_RESULTS):
        result = {
            "uuid": f"0000000{index}-0000-0000-0000-000000000000",
            "historyId": f"h{index}",
            "name": name,
            "fullName": f"harness.portability.{name}",
            "status": status,
            "statusDetails": {"message": message},
            "start": 1_700_000_000_000 + index,
            "stop": 1_700_000_001_000 + index,
            "labels": [{"name": "parentSuite", "value": "linux-debian12"}, {"name": "suite", "value": "install"}],
        }
        (folder / f"{result['uuid']}-result.json").write_text(json.dumps(result), encoding="utf-8")


def test_the_allure_report_opens_from_disk(tmp_path: Path, chromium: HeadlessChromium) -> None:
    try:
        allure = AllureCommandLine.from_cache()
        allure.ensure()
    except HarnessError as exc:
        unavailable(f"Allure's command line unavailable: {exc}")
        raise
    results, report = tmp_path / "allure-results", tmp_path / "allure-report"
    _allure_results(results)
    index = allure.generate(results, report)

    url = index.absolute().as_uri() + "#suites"
    assert url.startswith("file://")
    page = chromium.dom(url, wait_ms=15000)
    shutil.copyfile(chromium.screenshot(url, tmp_path / "allure.png", width=1440, height=900, wait_ms=15000),
                    artefacts() / "allure-from-disk.png")
    assert "Failed to fetch" not in page
    assert "linux-debian12" in page, "the suites view lists no test: the report did not load its data"
    assert "googletagmanager" not in index.read_text(encoding="utf-8"), "opening a report calls no outside host"
    assert (report / "history" / "history.json").is_file(), "the next run's trends start from this history"
