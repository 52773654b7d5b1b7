"""The must-show: the sign-off page and the allure report of real runs, rendered in headless
Chromium the way a release manager sees them. One run passes, one carries a broken variant (the
installer reaches for the network); the verdict and the failing check must be visible. The
screenshots are kept under the outer run's ``<results>/screenshots/`` as CI artifacts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.plugins.report import reporter_for
from harness.report.allure.cli import AllureCommandLine
from harness.report.browser import HeadlessChromium
from harness.report.results_dir.layout import ResultsLayout
from harness.report.screenshots import render_allure, render_signoff
from tests.e2e.test_report_run import harness_report, run_child, run_sample
from tests.needs import unavailable

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _unavailable(what: str, exc: HarnessError) -> None:
    unavailable(f"{what} unavailable: {exc}")  # CI installs both; on a desk they may be missing


@pytest.fixture(scope="module")
def chromium() -> HeadlessChromium:
    try:
        return HeadlessChromium.find()
    except HarnessError as exc:
        _unavailable("Chromium", exc)
        raise


@pytest.fixture(scope="module")
def allure_ready() -> Path:
    try:
        return AllureCommandLine.from_cache().ensure()
    except HarnessError as exc:
        _unavailable("Allure's command line", exc)
        raise


@pytest.fixture
def artifacts(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Path:
    """Where the screenshots stay after the test: the outer run's results directory."""
    variant = request.node.callspec.id
    kind = "reference" if "real_run" in request.node.originalname else "sample"
    folder = reporter_for(pytestconfig).layout.screenshots / f"report-{kind}-{variant}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _keep(shots: dict[str, Path], folder: Path) -> None:
    for name, path in shots.items():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, f"{name}: not a real screenshot"
        shutil.copyfile(path, folder / path.name)


@pytest.mark.parametrize("brk", ["", "install"], ids=["good", "installer-downloads"])
def test_signoff_and_allure_report_show_the_verdict_and_the_failing_check(
    tmp_path: Path,
    brk: str,
    chromium: HeadlessChromium,
    allure_ready: Path,
    artifacts: Path,
) -> None:
    results = tmp_path / "results"
    run_sample(tmp_path, results, brk=brk, images="linux-debian12,linux-ubuntu24")
    done = harness_report("--results", str(results), "--open", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"allure report: {results / 'allure-report' / 'index.html'}" in done.stdout
    layout = ResultsLayout(results)

    signoff = render_signoff(layout, chromium)
    allure = render_allure(layout, chromium)
    _keep(signoff.screenshots | allure.screenshots, artifacts)

    page = signoff.text["signoff"]
    overview = allure.text["allure-overview"]
    assert "sample-v1.0.0-x86_64-linux.tar.gz" in overview and "linux-ubuntu24" in overview
    if not brk:
        assert "<h1>SHIP</h1>" in page and 'id="failures"' not in page
        assert "allure-failure" not in allure.text
        return
    assert "<h1>DO NOT SHIP</h1>" in page
    failures = page.index("What failed")
    assert page.index("DO NOT SHIP") < failures and "pypi.invalid" in page[failures:]
    assert "install_offline" in page and "Install defect" in page
    assert "Install defect" in allure.text["allure-categories"]
    failure = allure.text["allure-failure"]
    assert "ProductDefect" in failure and "pypi.invalid" in failure and "Failed" in failure


# -- the same on real runs of the portability suite (reference release, one VM each) ---------

REPO = Path(__file__).resolve().parents[2]
# One VM per run: the checks that need no second VM, the static ones and the host-side checksum.
REAL_SELECTION = (
    "install_offline or egress_none or server_starts or determinism_temperature0 or "
    "stream_matches_nonstream or goldens_match or static_area or release_checksum"
)
REAL_RUN_TIMEOUT_S = 1800


def run_portability_suite(release: Path, results: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "harness.portability",
        "-p",
        "no:cacheprovider",
        "-q",
        "--release",
        str(release),
        "--results-dir",
        str(results),
        "-k",
        REAL_SELECTION,
    ]
    done = run_child(command, REPO, timeout=REAL_RUN_TIMEOUT_S)
    (results / "suite-output.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    return done


@pytest.mark.vm
@pytest.mark.parametrize(
    "variant", [None, "installer_download"], ids=["reference", "installer_download"]
)
@pytest.mark.ondemand  # a real VM run; CI's real runs are test_variants' and the wheel's
def test_real_run_of_the_reference_release_renders_its_verdict(
    tmp_path: Path,
    variant: str | None,
    chromium: HeadlessChromium,
    allure_ready: Path,
    artifacts: Path,
) -> None:
    from harness.suite.reference import build_reference, default_release, variant_release

    build_reference(variants=[variant] if variant else None, root=REPO)
    release = variant_release(variant, REPO) if variant else default_release(REPO)
    assert release is not None, "the reference release build left no tarball"
    results = tmp_path / "results"
    suite = run_portability_suite(release, results)
    layout = ResultsLayout(results)
    assert layout.signoff_json.is_file(), suite.stdout[-3000:] + suite.stderr[-2000:]
    done = harness_report("--results", str(results), "--open", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    signoff = render_signoff(layout, chromium)
    allure = render_allure(layout, chromium)
    _keep(signoff.screenshots | allure.screenshots, artifacts)
    page = signoff.text["signoff"]
    assert release.name in page and release.name in allure.text["allure-overview"]
    if variant is None:
        assert suite.returncode == 0, suite.stdout[-3000:]
        assert "<h1>SHIP</h1>" in page and 'id="failures"' not in page
        for check in (
            "install_offline",
            "egress_none",
            "determinism_temperature0",
            "goldens_match",
        ):
            assert check in page
        return
    assert suite.returncode == 1, suite.stdout[-3000:]
    failures = page.index("What failed")
    assert "<h1>DO NOT SHIP</h1>" in page and "install_offline" in page[failures:]
    assert "updates.refapp.invalid" in page[failures:]
    assert "Install defect" in allure.text["allure-categories"]
    assert "updates.refapp.invalid" in allure.text["allure-failure"]


def test_allure_history_carries_from_one_run_to_the_next(
    tmp_path: Path, allure_ready: Path
) -> None:
    results = tmp_path / "results"
    for brk in ("", "drift"):
        run_sample(tmp_path, results, brk=brk)
        done = harness_report("--results", str(results), "--open", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    trend = json.loads(
        (results / "allure-report" / "history" / "history-trend.json").read_text(encoding="utf-8")
    )
    assert [point["data"]["failed"] for point in trend] == [1, 0]
    assert [point["buildOrder"] for point in trend] == [2, 1]
    history = json.loads(
        (results / "allure-report" / "history" / "history.json").read_text(encoding="utf-8")
    )
    repeat = next(
        entry for entry in history.values() if any(i["status"] == "failed" for i in entry["items"])
    )
    assert [item["status"] for item in repeat["items"]] == ["failed", "passed"]
