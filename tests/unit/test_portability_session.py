"""Which pytest sessions the plugin acts in, and the order the suite runs in (real child pytests).

The plugin is installed in a venv, so it is loaded by every pytest session there: only a
portability run may write results/ or print a sign-off; any other session only gets fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report.progress import PhaseProgress, duration, label
from harness.suite.pipeline import PIPELINE

pytest_plugins = ["pytester"]

PLAIN_TEST = "def test_plain():\n    assert 1 + 1 == 2\n"
PHASED_TEST = """
import time

def test_phased(report):
    with report.phase("install", target="box-1"):
        time.sleep(0.2)
"""
USER_CHECK = "def test_mine(installed):\n    assert installed.installer.ok\n"


def fake_release(where: Path, version: str = "0.1.0") -> Path:
    path = where / f"refapp-v{version}-x86_64-linux.tar.gz"
    path.write_bytes(b"not a tarball: these sessions only collect")
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_a_session_that_is_not_a_portability_run_leaves_results_alone(pytester: pytest.Pytester) -> None:
    previous = pytester.path / "results"
    previous.mkdir()
    (previous / "junit.xml").write_text("<the last real run/>")
    pytester.makepyfile(test_plain=PLAIN_TEST)
    result = run(pytester, "-m", "not vm")
    result.assert_outcomes(passed=1)
    assert "sign-off" not in result.stdout.str()
    assert sorted(p.name for p in previous.iterdir()) == ["junit.xml"]
    assert (previous / "junit.xml").read_text() == "<the last real run/>"


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_another_sessions_junit_and_allure_carry_nothing_of_the_harness(pytester: pytest.Pytester,
                                                                        workers: tuple[str, ...]) -> None:
    """A user's unrelated run with its own JUnit and allure output: the harness adds no labels,
    properties or outcomes of its own (a strict xunit2 reader would reject the properties)."""
    pytester.makepyfile(test_plain=PLAIN_TEST, test_failing="def test_failing():\n    assert 1 == 2\n")
    junit, allure = pytester.path / "their-junit.xml", pytester.path / "their-allure"
    result = run(pytester, *workers, f"--junitxml={junit}", f"--alluredir={allure}")
    result.assert_outcomes(passed=1, failed=1)
    assert "harness." not in junit.read_text() and "<properties>" not in junit.read_text()
    written = "".join(f.read_text() for f in allure.glob("*-result.json"))
    assert written and "harness" not in written and "Broken" not in written
    assert '"status": "failed"' in written
    assert not (pytester.path / "results").exists()


def test_asking_for_results_makes_a_portability_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_phased=PHASED_TEST)
    results = pytester.path / "out"
    result = run(pytester, f"--results-dir={results}")
    result.assert_outcomes(passed=1)
    assert (results / "junit.xml").is_file() and (results / "signoff.html").is_file()
    result.stdout.fnmatch_lines(["*sign-off: *"])
    # The phase is announced while it runs and its duration added when it ends.
    result.stdout.fnmatch_lines(["box-1: installing ... 0.* s"])


def test_an_xdist_worker_reports_progress_on_the_controllers_stderr(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_phased=PHASED_TEST)
    result = run(pytester, "-n", "1", f"--results-dir={pytester.path / 'out'}")
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines(["[[]gw0[]] box-1: installing ...", "[[]gw0[]] box-1: installing: 0.* s"])


def test_a_check_of_a_release_outside_a_portability_run_says_what_to_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=USER_CHECK)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_mine.py::test_mine* checks a release*pass --release PATH*"])
    assert not (pytester.path / "results").exists()


def test_the_suite_runs_in_the_order_a_release_manager_reads(pytester: pytest.Pytester) -> None:
    a = fake_release(pytester.path)
    (pytester.path / "b").mkdir()
    b = fake_release(pytester.path / "b", "0.2.0")
    result = run(pytester, "--pyargs", "harness.portability", "--collect-only", "-q",
                 f"--release={a}", f"--release={b}")
    ids = [line for line in result.stdout.lines if "::" in line]
    modules = list(dict.fromkeys(line.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py") for line in ids))
    assert modules == [m for stage in PIPELINE for m in stage.modules]
    # Host-side checks first for every target, then each target's VM work in one block.
    vm_work = [line for line in ids if "test_release.py" not in line and "test_static.py" not in line]
    targets = [line.rsplit("[", 1)[-1] for line in vm_work]
    first_b = next(i for i, t in enumerate(targets) if "0.2.0" in t)
    assert all("0.1.0" in t for t in targets[:first_b]) and all("0.2.0" in t for t in targets[first_b:])
    assert vm_work[first_b - 1].split("::")[0].endswith("test_egress.py")


def test_the_suite_is_collected_under_the_callers_own_patterns_and_strict_markers(
        pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npython_files = check_*.py\naddopts = --strict-markers\n")
    result = run(pytester, "--pyargs", "harness.portability", "--collect-only", "-q",
                 f"--release={fake_release(pytester.path)}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    assert len([line for line in result.stdout.lines if "::" in line]) >= 25


# -- progress lines, without pytest --------------------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def begin(self, text: str) -> None:
        self.lines.append(f"begin {text}")

    def end(self, text: str, text_alone: str, ok: bool) -> None:
        self.lines.append(f"end {text} | {text_alone} | {ok}")


class Record:
    def __init__(self, target: str, phase: str, duration_s: float, ok: bool = True) -> None:
        self.target, self.phase, self.duration_s, self.ok = target, phase, duration_s, ok


def test_progress_names_suite_phases_and_ignores_a_vms_own_sub_phases() -> None:
    sink = RecordingSink()
    progress = PhaseProgress(sink)
    progress.pytest_harness_phase_started(name="twin_install", target="linux-debian12")
    progress.pytest_harness_phase_finished(phase=Record("linux-debian12", "vm_clone", 0.1))
    progress.pytest_harness_phase_finished(phase=Record("linux-debian12", "twin_install", 72.4, ok=False))
    assert sink.lines == [
        "begin linux-debian12: second VM: installing ...",
        "end 1 min 12 s (failed) | linux-debian12: second VM: installing: 1 min 12 s (failed) | False",
    ]


def test_durations_and_labels_read_like_prose() -> None:
    assert [duration(s) for s in (9.84, 72.4, 3725.0)] == ["9.8 s", "1 min 12 s", "1 h 2 min"]
    assert label("serve") == "starting the server" and label("odd_phase") == "odd phase"
