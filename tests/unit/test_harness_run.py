"""`harness run` turns its options into one pytest command line, checking inputs before any VM."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.checks.goldens import rerecord_command
from harness.cli import build_parser, main
from harness.commands import run as run_command
from harness.commands.run import make_plan, pytest_argv
from harness.errors import UsageError
from harness.plugins.summary import timing_rows
from harness.run_options import RunOptions
from tests.unit.release_files import small_release


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def fake_release(tmp_path: Path, name: str = "refapp-v0.1.0-x86_64-linux.tar.gz") -> Path:
    """A whole, safe tarball with a release's name: enough for every check made before a VM."""
    return small_release(tmp_path / name)


def test_matrix_and_workers(tmp_path: Path) -> None:
    a = fake_release(tmp_path)
    (tmp_path / "v").mkdir()
    b = fake_release(tmp_path / "v")
    plan = make_plan(parse("--release", str(a), "--release", str(b), "--image", "linux-debian12", "-n", "2",
                           "--results-dir", str(tmp_path / "res"), "-k", "determinism", "--", "-x"))
    argv = pytest_argv(plan)
    assert "--profile=reference" in argv
    # Paths share a word with their option: pytest must not take them for rootdir hints.
    assert [v.removeprefix("--release=") for v in argv if v.startswith("--release")] == [str(a), str(b)]
    assert f"--results-dir={tmp_path / 'res'}" in argv
    assert argv[argv.index("-n") + 1] == "2" and argv[argv.index("--dist") + 1] == "loadgroup"
    assert argv[argv.index("--max-worker-restart") + 1] == "0"
    assert argv[argv.index("-k") + 1] == "determinism" and argv[-1] == "-x"
    assert argv[argv.index("--pyargs") + 1] == "harness.portability"


def test_the_re_record_command_a_golden_check_prints_is_one_harness_run_takes(tmp_path: Path) -> None:
    """The last line of a goldens failure is a command to paste: harness run must accept it whole."""
    release = fake_release(tmp_path, "tiles-v0.4.20-canary.1-x86_64-linux.tar.gz")
    target = SimpleNamespace(spec=SimpleNamespace(release_path=release), image="linux-debian12")
    command = rerecord_command(target, "tiles", tmp_path / "goldens")  # type: ignore[arg-type]
    words = shlex.split(command)
    assert words[:2] == ["harness", "run"]
    argv = pytest_argv(make_plan(build_parser().parse_args(words[1:])))
    assert f"--goldens-dir={tmp_path / 'goldens'}" in argv and "--update-goldens" in argv
    assert f"--release={release}" in argv and "--profile=tiles" in argv


def test_single_run_has_no_xdist(tmp_path: Path) -> None:
    argv = pytest_argv(make_plan(parse("--release", str(fake_release(tmp_path)))))
    assert "-n" not in argv and "--dist" not in argv
    assert "--image=linux-debian12" in argv


def test_bad_inputs_fail_before_any_vm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="unknown profile"):
        make_plan(parse("--profile", "nosuch", "--release", str(fake_release(tmp_path))))
    with pytest.raises(UsageError, match="does not exist"):
        make_plan(parse("--release", str(tmp_path / "refapp-v1.0-x86_64-linux.tar.gz")))
    with pytest.raises(UsageError, match="'tiles' release but the profile expects 'refapp'"):
        make_plan(parse("--release", str(fake_release(tmp_path, "tiles-v0.4.1-x86_64-linux.tar.gz"))))
    with pytest.raises(UsageError, match="needs a release"):
        make_plan(parse("--profile", "tiles"))
    assert main(["run", "--profile", "nosuch"]) == 2
    assert "harness: usage error: unknown profile 'nosuch'" in capsys.readouterr().err


def test_timing_rows_keep_first_of_repeated_phases() -> None:
    records = [
        {"kind": "phase", "target": "linux-debian12", "phase": "boot", "duration_s": 40.0},
        {"kind": "phase", "target": "linux-debian12", "phase": "serve", "duration_s": 12.5},
        {"kind": "phase", "target": "linux-debian12", "phase": "serve", "duration_s": 30.0},
        {"kind": "phase", "target": "linux-debian12", "phase": "vm_clone", "duration_s": 0.1},
    ]
    assert timing_rows(records) == {"linux-debian12": {"boot": 40.0, "serve": 12.5}}


def test_upgrade_from_is_checked_and_passed_on(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    old = fake_release(tmp_path / "old", "refapp-v0.0.9-x86_64-linux.tar.gz")
    argv = pytest_argv(make_plan(parse("--release", str(fake_release(tmp_path)), "--upgrade-from", str(old),
                                       "--condition", "all")))
    assert f"--upgrade-from={old}" in argv and "--condition=all" in argv
    with pytest.raises(UsageError, match="does not exist"):
        make_plan(parse("--release", str(fake_release(tmp_path)), "--upgrade-from", str(tmp_path / "refapp-v0.0.1-x86_64-linux.tar.gz")))


def test_a_sigterm_for_harness_alone_reaches_pytest_and_is_waited_for(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    """A CI runner stopping the job signals `harness`; pytest must get it and be waited for."""
    ready = tmp_path / "ready"
    child = ("import pathlib, signal, sys, time\n"
             "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(7)))\n"
             f"pathlib.Path({str(ready)!r}).touch()\n"
             "time.sleep(60)\n")
    monkeypatch.setattr(run_command, "pytest_argv", lambda plan: [sys.executable, "-c", child])
    monkeypatch.chdir(tmp_path)  # pytest runs where harness was started

    def terminate_when_ready() -> None:
        while not ready.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_ready, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    plan = run_command.RunPlan(options=RunOptions(), workers=0, select=None, pytest_args=())
    assert run_command.execute(plan) == 7
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_a_checkout_a_bare_run_says_to_pass_a_release(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """An installed wheel has no reference release: a run without --release says what to pass."""
    monkeypatch.setattr(run_command, "release_dir", lambda: tmp_path / "no-checkout-here")
    with pytest.raises(UsageError, match="only in a checkout") as info:
        make_plan(parse())
    assert "harness run --release PATH" in info.value.hint
