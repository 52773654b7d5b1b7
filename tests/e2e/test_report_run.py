"""Real pytest runs, in a subprocess, of a small suite that uses the report API like the portability
suite does; then the files the run left: allure results, JUnit XML, journal, sign-off, history.

The sample suite breaks on demand (``SAMPLE_BREAK``) in each way a release or the harness can
break, so every outcome mapping is checked against what allure, JUnit and the sign-off really say.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.report.categories import categorize
from harness.report.results_dir.layout import ResultsLayout, ResultsLock

RUN_TIMEOUT_S = 240

SAMPLE_SUITE: dict[str, str] = {
    "conftest.py": """
        import os
        import time

        import pytest

        from harness.errors import BootTimeout, ProductDefect

        BREAK = set(filter(None, os.environ.get("SAMPLE_BREAK", "").split(",")))
        IMAGES = os.environ.get("SAMPLE_IMAGES", "linux-debian12").split(",")
        INSTALL_S = float(os.environ.get("SAMPLE_INSTALL_S", "0.05"))


        @pytest.hookimpl
        def pytest_harness_phase_finished(phase):
            log = os.environ.get("SAMPLE_PHASE_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(f"{phase.target} {phase.phase} {phase.ok}\\n")


        # Named "platform", not "image": the VM plugin parametrizes "image" fixtures from --image.
        @pytest.fixture(scope="session", params=IMAGES)
        def platform(request, report):
            image = request.param
            report.describe_release("sample-v1.0.0-x86_64-linux.tar.gz", version="1.0.0",
                                    sha256="ab" * 32, profile="sample")
            report.describe_image(image, image_id=image, digest="sha256:" + "cd" * 32)
            report.volatile(image, vm=f"hns-{os.getpid()}-{image}", port=2200 + len(image))
            with report.phase("boot", target=image):
                if "boot" in BREAK:
                    raise BootTimeout(f"{image} did not answer SSH within 1 s", hint="look at the console log")
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            report.attach_text(f"{worker} booted {image}\\n", f"console {worker}", target=image)
            return image


        @pytest.fixture(scope="session")
        def installed(platform, report):
            image = platform
            with report.phase("install", target=image):
                time.sleep(INSTALL_S)
            tried = "GET https://pypi.invalid/simple/numpy\\n" if "install" in BREAK else ""
            report.attach_text(f"installing on {image}\\n{tried}done\\n", "installer output", target=image)
            if "install" in BREAK:
                raise ProductDefect("the installer tried to download from pypi.invalid while offline",
                                    hint="bundle every wheel in the release")
            report.footprint(image, {"runtime": 1000, "app": 2000 + (5000 if "grow" in BREAK else 0)})
            return image
    """,
    "test_install.py": """
        from conftest import BREAK


        def test_install_offline(installed):
            pass


        def test_install_writes_only_its_tree(installed):
            assert "tree" not in BREAK, "the installer wrote /usr/local/bin/sample outside its tree"
    """,
    "test_determinism.py": """
        import time

        import pytest

        from conftest import BREAK


        def test_repeat(installed, report):
            text = f"hello {time.time()}" if "drift" in BREAK else "hello"
            report.digest(installed, "hello", text=text)
            assert "drift" not in BREAK, "two completions at temperature 0 differ"


        @pytest.mark.skip(reason="the sample server has no seed")
        def test_seeded(installed):
            pass
    """,
    "test_egress.py": """
        import pytest

        from conftest import BREAK


        def test_offline(installed, report):
            if "egress" in BREAK:
                report.egress(installed, [{"host": "pypi.invalid", "port": 443, "proto": "tcp"}])
                pytest.fail("the release tried to reach pypi.invalid:443 while serving")
    """,
    "test_static.py": """
        from conftest import BREAK


        def test_elf_dependencies():
            assert "static" not in BREAK, "server/bin/helper needs libfoo.so.1, which the release does not ship"
    """,
    "test_server.py": """
        import os

        from conftest import BREAK


        def test_health(installed):
            if "bug" in BREAK:
                {}["a key the harness forgot"]
            if "crash" in BREAK:
                os._exit(3)
    """,
}
TESTS_PER_IMAGE = 6
STATIC_TESTS = 1  # judge the tarball, run once whatever the images


@dataclass(frozen=True)
class SampleRun:
    process: subprocess.CompletedProcess[str]
    layout: ResultsLayout

    @property
    def output(self) -> str:
        return self.process.stdout + self.process.stderr

    def allure_results(self) -> list[dict[str, Any]]:
        return [
            json.loads(p.read_text(encoding="utf-8"))
            for p in self.layout.allure_results.glob("*-result.json")
        ]

    def allure_status(self) -> dict[str, str]:
        return {r["name"]: r["status"] for r in self.allure_results()}

    def junit_status(self) -> dict[str, str]:
        found = {}
        for case in ET.parse(self.layout.junit).getroot().iter("testcase"):
            tags = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            found[case.get("name", "")] = tags[0] if tags else "passed"
        return found

    def journal(self, kind: str) -> list[dict[str, Any]]:
        records = []
        for path in sorted(self.layout.journal.glob("*.jsonl")):
            records += [
                json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line
            ]
        return [r for r in records if r.get("kind") == kind]

    def signoff(self) -> dict[str, Any]:
        return json.loads(self.layout.signoff_json.read_text(encoding="utf-8"))


def write_sample_suite(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in SAMPLE_SUITE.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment minus what would leak into a child run (CI summary, extra pytest options)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS")
    }
    return env | (extra or {})


def run_child(
    command: list[str], cwd: Path, timeout: float = RUN_TIMEOUT_S, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        check=False,
        cwd=cwd,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sample_command(
    workdir: Path,
    results: Path,
    *args: str,
    brk: str = "",
    images: str = "linux-debian12",
    install_s: float = 0.05,
    extra_env: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    suite = write_sample_suite(workdir / "sample")
    env = child_env(
        {
            "SAMPLE_BREAK": brk,
            "SAMPLE_IMAGES": images,
            "SAMPLE_INSTALL_S": str(install_s),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        | (extra_env or {})
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--results-dir={results}",
        *args,
        str(suite),
    ]
    return command, env


def run_sample(workdir: Path, results: Path, *args: str, **options: Any) -> SampleRun:
    """Run the sample suite; ``options`` are :func:`sample_command`'s (brk, images, install_s, extra_env)."""
    command, env = sample_command(workdir, results, *args, **options)
    return SampleRun(run_child(command, workdir, env=env), ResultsLayout(results))


def expected(**overrides: str) -> dict[str, str]:
    base = {
        "test_install_offline": "passed",
        "test_install_writes_only_its_tree": "passed",
        "test_repeat": "passed",
        "test_seeded": "skipped",
        "test_offline": "passed",
        "test_health": "passed",
    }
    return base | overrides


BREAKS: dict[str, dict[str, str]] = {
    "": expected(),
    # product defects in test bodies (assert, pytest.fail) and a harness bug (KeyError)
    "tree,drift,egress,bug,static": expected(
        test_install_writes_only_its_tree="failed",
        test_repeat="failed",
        test_offline="failed",
        test_health="broken",
    ),
    # a ProductDefect raised in a fixture: allure-pytest alone would call these broken
    "install": {k: ("skipped" if k == "test_seeded" else "failed") for k in expected()},
    # an InfrastructureError (BootTimeout) in a fixture: broken, not the release's fault
    "boot": {k: ("skipped" if k == "test_seeded" else "broken") for k in expected()},
}
JUNIT_TAG = {"passed": "passed", "failed": "failure", "broken": "error", "skipped": "skipped"}
CATEGORY = {
    "test_install_writes_only_its_tree": "Install defect",
    "test_install_offline": "Install defect",
    "test_repeat": "Determinism drift",
    "test_offline": "Egress attempt",
    "test_health": "Server defect",
    "test_elf_dependencies": "Static finding",
}


@pytest.mark.parametrize("brk", list(BREAKS), ids=lambda b: b or "good")
def test_outcomes_agree_across_allure_junit_journal_and_signoff(tmp_path: Path, brk: str) -> None:
    run = run_sample(tmp_path, tmp_path / "results", brk=brk)
    want = {f"{name}[linux-debian12]": status for name, status in BREAKS[brk].items()}
    want["test_elf_dependencies"] = "failed" if "static" in brk else "passed"
    assert run.process.returncode == (0 if not brk else 1), run.output
    assert run.allure_status() == want
    assert run.junit_status() == {name: JUNIT_TAG[status] for name, status in want.items()}
    checks = {r["nodeid"].rsplit("::", 1)[-1]: r["outcome"] for r in run.journal("check")}
    assert checks == want
    # A skip keeps its reason: the reader of a skipped check needs to know why it did not run.
    seeded = next(r for r in run.journal("check") if r["check"] == "seeded")
    assert seeded["outcome"] == "skipped" and seeded["message"] == "the sample server has no seed", seeded
    for result in run.allure_results():
        if result["status"] in ("failed", "broken"):
            category = categorize(result["status"], result["statusDetails"]["message"])
            base = result["name"].split("[")[0]
            wanted = "Infrastructure broken" if result["status"] == "broken" else CATEGORY[base]
            assert category is not None and category.name == wanted, result["statusDetails"][
                "message"
            ]
    signoff = run.signoff()
    assert signoff["verdict"]["ship"] is (not brk)
    assert (f"sign-off: {'SHIP' if not brk else 'DO NOT SHIP'}") in run.process.stdout


def test_phases_reach_the_hook(tmp_path: Path) -> None:
    log = tmp_path / "phases.log"
    run_sample(tmp_path, tmp_path / "results", brk="boot", extra_env={"SAMPLE_PHASE_LOG": str(log)})
    assert log.read_text(encoding="utf-8").splitlines() == ["linux-debian12 boot False"]


def test_phases_reach_the_journal_and_allure(tmp_path: Path) -> None:
    run = run_sample(tmp_path, tmp_path / "results", brk="boot")
    [phase] = run.journal("phase")
    assert (phase["target"], phase["phase"], phase["ok"]) == ("linux-debian12", "boot", False)
    steps = [s for c in _containers(run) for b in c.get("befores", []) for s in b.get("steps", [])]
    boot = next(s for s in steps if s["name"] == "boot [linux-debian12]")
    assert boot["status"] == "broken" and "BootTimeout" in boot["statusDetails"]["message"]


def test_labels_parameters_and_allure_extras(tmp_path: Path) -> None:
    run = run_sample(tmp_path, tmp_path / "results", brk="drift")
    result = next(r for r in run.allure_results() if r["name"] == "test_repeat[linux-debian12]")
    labels = {label["name"]: label["value"] for label in result["labels"]}
    assert (labels["parentSuite"], labels["suite"], labels["release"], labels["profile"]) == (
        "linux-debian12",
        "determinism",
        "1.0.0",
        "sample",
    )
    assert "harness.outcome" not in labels
    excluded = {p["name"] for p in result["parameters"] if p.get("excluded")}
    assert excluded == {"vm", "port"}
    steps = [step["name"] for step in result.get("steps", [])]
    setup_steps = [
        s["name"]
        for c in _containers(run)
        for b in c.get("befores", [])
        for s in b.get("steps", [])
    ]
    assert "boot [linux-debian12]" in setup_steps + steps
    allure_dir = run.layout.allure_results
    properties = (allure_dir / "environment.properties").read_text(encoding="utf-8")
    assert (
        "release.tarball=sample-v1.0.0-x86_64-linux.tar.gz" in properties
        and "image.digest=sha256\\:cdcd" in properties
    )
    assert json.loads((allure_dir / "executor.json").read_text(encoding="utf-8"))["buildOrder"] == 1
    assert (
        json.loads((allure_dir / "categories.json").read_text(encoding="utf-8"))[0]["name"]
        == "Install defect"
    )


def test_volatile_values_do_not_change_the_history_id(tmp_path: Path) -> None:
    first = run_sample(tmp_path / "a", tmp_path / "a" / "results", brk="drift")
    second = run_sample(tmp_path / "b", tmp_path / "b" / "results", brk="drift")
    ids = [{r["name"]: r["historyId"] for r in run.allure_results()} for run in (first, second)]
    vms = [
        {
            p["value"]
            for r in run.allure_results()
            for p in r.get("parameters", [])
            if p["name"] == "vm"
        }
        for run in (first, second)
    ]
    assert vms[0] != vms[1], "the VM name differs per run (it carries the pid)"
    assert ids[0] == ids[1]


def _containers(run: SampleRun) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in run.layout.allure_results.glob("*-container.json")
    ]


def test_signoff_links_evidence_that_exists(tmp_path: Path) -> None:
    run = run_sample(tmp_path, tmp_path / "results", brk="install")
    check = next(c for c in run.signoff()["checks"] if c["check"] == "install_offline")
    assert check["outcome"] == "failed" and check["category"] == "Install defect"
    assert check["evidence"], "the installer output must be linked from the failing check"
    for link in check["evidence"]:
        assert (run.layout.root / link).is_file()
    html = run.layout.signoff_html.read_text(encoding="utf-8")
    assert "pypi.invalid" in html and 'href="evidence/linux-debian12/installer-output.txt"' in html
    assert (
        (run.layout.root / "signoff.md").read_text(encoding="utf-8").startswith("## ⛔ DO NOT SHIP")
    )


IMAGES4 = "linux-debian12,linux-ubuntu24,linux-fedora41,linux-alpine3"


def test_two_workers_lose_nothing_duplicate_nothing_and_clean_once(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "allure-results").mkdir(parents=True)
    (results / "allure-results" / "stale-result.json").write_text("{}", encoding="utf-8")
    (results / "history" / "runs").mkdir(parents=True)
    (results / "history" / "runs" / "kept.json").write_text("{}", encoding="utf-8")
    run = run_sample(tmp_path, results, "-n", "2", "--clean-alluredir", brk="drift", images=IMAGES4)
    assert run.process.returncode == 1, run.output
    total = 4 * TESTS_PER_IMAGE + STATIC_TESTS
    names = Counter(r["name"] for r in run.allure_results())
    assert len(names) == total and set(names.values()) == {1}, names
    assert not (results / "allure-results" / "stale-result.json").exists()
    assert (results / "history" / "runs" / "kept.json").exists()
    checks = Counter(r["nodeid"] for r in run.journal("check"))
    assert len(checks) == total and set(checks.values()) == {1}
    assert len(run.junit_status()) == total
    assert len(run.journal("run")) == 1, (
        "only the controller claims and cleans the results directory"
    )
    # Each worker left console evidence when it started; a second cleaning would have removed it.
    workers = {
        p.name.split("console-")[1].split(".")[0] for p in results.glob("evidence/*/console-*.txt")
    }
    assert workers == {"gw0", "gw1"}
    signoff = run.signoff()
    assert len(signoff["targets"]) == 4 and signoff["counts"] == {
        "passed": 17,
        "failed": 4,
        "broken": 0,
        "skipped": 4,
    }
    assert {p["target"] for p in signoff["phases"] if p["phase"] == "install"} == set(
        IMAGES4.split(",")
    )


def test_a_crashed_worker_leaves_a_broken_result_not_a_gap(tmp_path: Path) -> None:
    # "--dist load": the suite plugin turns a bare -n into loadgroup, whose worker replacement
    # hangs in pytest-xdist 3.8.0 (pytest-dev/pytest-xdist#1323, #1327; fixed upstream, unreleased).
    run = run_sample(tmp_path, tmp_path / "results", "-n", "2", "--dist", "load", brk="crash")
    assert "crashed" in run.output
    status = run.allure_status()
    assert status.get("test_health[linux-debian12]") == "broken", status
    assert len(status) == TESTS_PER_IMAGE + STATIC_TESTS
    crashed = [
        r for r in run.journal("check") if r["nodeid"].endswith("test_health[linux-debian12]")
    ]
    assert [(r["outcome"], r["target"]) for r in crashed] == [("broken", "linux-debian12")]
    signoff = run.signoff()
    assert signoff["verdict"]["ship"] is False and signoff["problems"] == []


def test_tests_a_dead_worker_never_ran_are_named_not_forgotten(tmp_path: Path) -> None:
    # No worker replacement: what the dead worker still had to run is never reported by anyone.
    run = run_sample(
        tmp_path,
        tmp_path / "results",
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "--max-worker-restart",
        "0",
        brk="crash",
        images="linux-debian12,linux-ubuntu24",
    )
    reported = {r["nodeid"] for r in run.journal("check")}
    [unreported] = run.journal("unreported")
    assert unreported["data"]["nodeids"], run.output
    assert not reported & set(unreported["data"]["nodeids"])
    assert len(reported) + len(unreported["data"]["nodeids"]) == 2 * TESTS_PER_IMAGE + STATIC_TESTS
    signoff = run.signoff()
    assert signoff["verdict"]["ship"] is False
    assert any("never reported a result" in p for p in signoff["problems"])


def test_a_fail_fast_run_stops_at_its_first_failure_and_says_what_did_not_run(tmp_path: Path) -> None:
    """-x: the first failed check ends the run; the sign-off is still written, names the failure,
    and says how many checks did not run (not "lost tests", which would call the harness broken)."""
    run = run_sample(tmp_path, tmp_path / "results", "-x", brk="tree")
    assert run.process.returncode == 1, run.output
    signoff = run.signoff()
    outcomes = {c["check"]: c["outcome"] for c in signoff["checks"]}
    assert outcomes.get("install_writes_only_its_tree") == "failed", outcomes
    assert len(outcomes) < len(expected()), f"the run went on after its first failure: {outcomes}"
    reasons = signoff["verdict"]["reasons"]
    assert reasons[0].startswith("1 check failed, the release has a defect: install_writes_only_its_tree"), reasons
    assert any("stopped at its first failure" in r and "not run" in r for r in reasons), reasons
    assert not signoff["problems"], signoff["problems"]


def test_a_second_run_on_a_busy_results_dir_stops_with_a_hint(tmp_path: Path) -> None:
    layout = ResultsLayout(tmp_path / "results")
    lock = ResultsLock(layout)
    lock.acquire()
    try:
        run = run_sample(tmp_path, layout.root)
    finally:
        lock.release()
    assert run.process.returncode == 4
    assert "in use by another run" in run.output and "--results-dir" in run.output
    assert "Traceback" not in run.output


def test_collect_only_leaves_the_results_alone(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "signoff.html").write_text("earlier run", encoding="utf-8")
    (results / "junit.xml").write_text("earlier junit", encoding="utf-8")
    run = run_sample(tmp_path, results, "--collect-only", "-q")
    assert run.process.returncode == 0, run.output
    assert (results / "signoff.html").read_text(encoding="utf-8") == "earlier run"
    assert (results / "junit.xml").read_text(encoding="utf-8") == "earlier junit"
    assert sorted(p.name for p in results.iterdir()) == ["junit.xml", "signoff.html"]


def harness_report(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_child([sys.executable, "-m", "harness.cli", "report", *args], cwd)


def test_harness_report_flags_every_kind_of_regression(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_sample(tmp_path, results, install_s=0.05)
    run_sample(tmp_path, results, brk="drift,grow", install_s=1.0)
    done = harness_report("--results", str(results), "--fail-on-regression", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("regression:")]
    kinds = sorted(line.split()[1] for line in lines)
    # The slower install makes the run's one total slower too: both are phase regressions.
    assert kinds == ["check", "digest", "footprint", "phase", "phase"], done.stdout
    assert any(line.startswith("regression: phase total time on run:") for line in lines), done.stdout
    trends = json.loads((results / "trends.json").read_text(encoding="utf-8"))
    assert len(trends["regressions"]) == 5 and trends["previous"]["verdict"] == "SHIP"
    html = (results / "signoff.html").read_text(encoding="utf-8")
    assert 'id="regressions"' in html and "golden completion changed" in html


def test_harness_report_against_an_explicit_previous_run_and_a_history_dir(tmp_path: Path) -> None:
    old, new, history = tmp_path / "old", tmp_path / "new", tmp_path / "ci-history"
    run_sample(tmp_path / "o", old)
    run_sample(tmp_path / "n", new, brk="egress")
    done = harness_report("--results", str(new), "--previous", str(old), cwd=tmp_path)
    assert (
        done.returncode == 0
        and "regression: check offline on linux-debian12: passed -> failed" in done.stdout
    )
    for results in (old, new):
        assert (
            harness_report(
                "--results", str(results), "--history", str(history), cwd=tmp_path
            ).returncode
            == 0
        )
    assert len(list((history / "runs").glob("*.json"))) == 2
    again = harness_report("--results", str(new), "--history", str(history), cwd=tmp_path)
    assert "regression: check offline" in again.stdout
    assert len(list((history / "runs").glob("*.json"))) == 2, "the same run is not added twice"


def test_harness_report_without_results_says_what_to_do(tmp_path: Path) -> None:
    done = harness_report("--results", str(tmp_path / "nothing"), cwd=tmp_path)
    assert done.returncode == 2
    assert (
        "no results of a run" in done.stderr
        and "hint:" in done.stderr
        and "Traceback" not in done.stderr
    )


def test_static_checks_are_filed_under_the_tarball_not_an_image(tmp_path: Path) -> None:
    run = run_sample(
        tmp_path, tmp_path / "results", brk="static", images="linux-debian12,linux-ubuntu24"
    )
    [record] = [r for r in run.journal("check") if r["nodeid"].endswith("test_elf_dependencies")]
    assert (record["target"], record["area"], record["outcome"]) == ("tarball", "static", "failed")
    result = next(r for r in run.allure_results() if r["name"] == "test_elf_dependencies")
    assert {lb["name"]: lb["value"] for lb in result["labels"]}["parentSuite"] == "tarball"
    signoff = run.signoff()
    assert signoff["targets"] == ["linux-debian12", "linux-ubuntu24"]
    html = run.layout.signoff_html.read_text(encoding="utf-8")
    assert 'id="static"' in html and "libfoo.so.1" in html


def test_the_markdown_summary_goes_to_the_ci_job_summary(tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    run = run_sample(
        tmp_path,
        tmp_path / "results",
        brk="egress",
        extra_env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## ⛔ DO NOT SHIP — sample-v1.0.0-x86_64-linux.tar.gz")
    assert (
        "Egress attempt" in text
        and text == run.layout.signoff_md.read_text(encoding="utf-8") + "\n"
    )


def test_ctrl_c_still_leaves_a_signoff_and_frees_the_results_dir(tmp_path: Path) -> None:
    results = tmp_path / "results"
    command, env = sample_command(tmp_path, results, install_s=60)
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list(
            results.glob("evidence/*/console-*.txt")
        ):  # booted, now "installing" for 60 s
            assert process.poll() is None and time.monotonic() < deadline, (
                "the sample run did not start"
            )
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, output
    signoff = json.loads((results / "signoff.json").read_text(encoding="utf-8"))
    assert signoff["verdict"]["ship"] is False
    assert any("interrupted" in reason for reason in signoff["verdict"]["reasons"])
    assert run_sample(tmp_path, results).process.returncode == 0, "the lock must die with the run"


TARGET_OBJECT_SUITE = """
import dataclasses

import pytest


@dataclasses.dataclass(frozen=True)
class Spec:
    release_path: str
    name: str

    def __str__(self):
        return self.name


# "platform": the suite's own plugin parametrizes every "target" fixture from --release/--image.
@pytest.fixture(params=[Spec("/somewhere/refapp-v0.1.0.tar.gz", "linux-debian12")], ids=str)
def platform(request):
    return request.param


def test_install_offline(platform):
    pass
"""


def test_a_target_object_shows_by_its_name_and_keeps_its_history_id(tmp_path: Path) -> None:
    suite = tmp_path / "objects" / "test_install.py"
    suite.parent.mkdir()
    suite.write_text(TARGET_OBJECT_SUITE, encoding="utf-8")
    ids = []
    for attempt in ("a", "b"):
        results = tmp_path / attempt
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--results-dir={results}",
            str(suite),
        ]
        assert run_child(command, tmp_path).returncode == 0
        [result] = SampleRun(
            subprocess.CompletedProcess([], 0), ResultsLayout(results)
        ).allure_results()
        assert {p["name"]: p["value"] for p in result["parameters"]} == {
            "platform": "'linux-debian12'"
        }
        ids.append(result["historyId"])
    assert ids[0] == ids[1]
