"""The harness as a stranger gets it: the built wheel in a fresh venv, run from a directory outside
this checkout, on the reference release in a real VM.

Two runs from a copy of ``examples/user_project`` (a product repository with its own pytest
configuration and one check of its own): ``harness run --release T`` (the built-in suite, the
checks that need one VM) and plain ``pytest --release=T`` (the project's own check on the
``installed``/``deployment`` fixtures). Both must pass, and nothing may come from the checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.journal import read_journal
from harness.suite.reference import build_reference, default_release

pytestmark = [pytest.mark.vm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "user_project"
# The built-in checks one VM answers (the manifest and uninstall checks need a second one).
SUITE_SELECTION = "release or static or install_offline or server_starts or goldens_match"
BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 3600  # one run waits for a VM slot the host's other runs share, then installs
STOP_TIMEOUT_S = 300


@dataclass(frozen=True)
class Stranger:
    """A fresh venv with only the wheel (and its dependencies) installed."""

    bin: Path
    seconds: dict[str, float]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, argv: list[str], cwd: Path, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run in a session of its own; past ``timeout`` the whole session gets SIGTERM (harness
        passes it on to pytest, which removes its VMs), and the test fails saying so."""
        process = subprocess.Popen(argv, cwd=cwd, env=self.env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException as exc:  # the timeout, or this test interrupted: the run goes too
            os.killpg(process.pid, signal.SIGTERM)
            out, err = process.communicate(timeout=STOP_TIMEOUT_S)
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            pytest.fail(f"{' '.join(argv[:2])} still ran after {timeout:g} s (a busy host's VM slots?); "
                        f"stopped it. Last output:\n{(out + err)[-4000:]}")
        return subprocess.CompletedProcess(argv, process.returncode, out, err)


def _timed(seconds: dict[str, float], name: str, argv: list[str], cwd: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    seconds[name] = round(time.monotonic() - started, 1)
    assert done.returncode == 0, f"{name} failed ({' '.join(argv)}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stranger]:
    work = tmp_path_factory.mktemp("stranger")
    seconds: dict[str, float] = {}
    _timed(seconds, "build the wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                                        "-w", str(work / "dist"), str(REPO)], work)
    [wheel] = sorted((work / "dist").glob("portability_harness-*.whl"))
    _timed(seconds, "create the venv", [sys.executable, "-m", "venv", str(work / "venv")], work)
    _timed(seconds, "install the wheel", [str(work / "venv" / "bin" / "pip"), "install", "-q", str(wheel)], work)
    yield Stranger(work / "venv" / "bin", seconds)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def reference_tarball() -> Path:
    found = default_release(REPO)
    if found is None:
        build_reference(root=REPO)
        found = default_release(REPO)
    assert found is not None, "the reference release build left no tarball"
    return found


def outside_the_checkout(tmp_path: Path) -> Path:
    project = shutil.copytree(EXAMPLE, tmp_path / "project")
    assert not project.resolve().is_relative_to(REPO), f"{project} is inside the checkout {REPO}"
    return project


def test_the_wheel_runs_the_suite_and_a_projects_own_check_from_outside_the_checkout(
        stranger: Stranger, reference_tarball: Path, tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    project = outside_the_checkout(tmp_path)
    where = stranger.run(["python", "-c", "import harness; print(harness.__file__)"], project, timeout=60)
    assert where.stdout.strip().startswith(str(stranger.bin.parent)), f"harness imported from {where.stdout}"

    images = stranger.run(["harness", "images", "list"], project, timeout=120)
    listed = [line for line in images.stdout.splitlines() if line.startswith("linux-debian12")]
    assert any("current" in line for line in listed), f"the wheel's recipe matches no built image:\n{images.stdout}"

    started = time.monotonic()
    suite = stranger.run(["harness", "run", "--release", str(reference_tarball), "-k", SUITE_SELECTION,
                          "--results-dir", str(tmp_path / "suite-results")], project)
    stranger.seconds["harness run"] = round(time.monotonic() - started, 1)
    output = suite.stdout + suite.stderr
    (tmp_path / "harness-run.txt").write_text(output)  # the run's order and progress lines, kept for a look
    assert suite.returncode == 0, f"harness run failed (exit {suite.returncode}):\n{output[-5000:]}"
    assert f"rootdir: {project}" in output, "pytest did not run with the project's own configuration"
    assert "sign-off: SHIP" in output and "installing ..." in output, output[-3000:]
    outcomes = {r["check"]: r["outcome"] for r in read_journal(tmp_path / "suite-results") if r.get("kind") == "check"}
    assert {"install_offline", "server_starts", "goldens_match"} <= set(outcomes), outcomes
    assert set(outcomes.values()) == {"passed"}, outcomes

    started = time.monotonic()
    own = stranger.run(["pytest", "-p", "no:cacheprovider", f"--release={reference_tarball}",
                        f"--results-dir={tmp_path / 'own-results'}"], project)
    stranger.seconds["the project's own check"] = round(time.monotonic() - started, 1)
    output = own.stdout + own.stderr
    assert own.returncode == 0, f"the example project's own check failed (exit {own.returncode}):\n{output[-5000:]}"
    assert "check_cli_version.py" in output and "1 passed" in output, output[-3000:]

    for name, seconds in stranger.seconds.items():
        record_property(name, seconds)
    print("stranger timings (s): " + ", ".join(f"{k} {v}" for k, v in stranger.seconds.items()))
