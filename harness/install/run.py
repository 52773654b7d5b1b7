"""Running an installer-like command in the guest and keeping what it did: exit code, output, time.

A hang is recorded (exit code None, the output until the kill), not raised: it is a finding
about the release. Every install step (first, again, upgrade, conditions, uninstall) runs its
commands through :func:`run_step`.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass

from harness.bounded import last_lines
from harness.errors import RemoteTimeout
from harness.guest import Guest
from harness.install.failure import TRACE_PS4, InstallFailure, diagnose
from harness.profile import BoundProfile


@dataclass(frozen=True)
class InstallerRun:
    command: str
    exit_code: int | None  # None when it was killed at the timeout
    output: str  # stdout then stderr, as the user would have seen them
    duration_s: float
    timeout_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None

    def tail(self, lines: int = 25) -> str:
        return last_lines(self.output, lines)

    def failure(self) -> InstallFailure:
        """What went wrong, named by step, first error line, exit code and a known-cause hint."""
        return diagnose(self.output, self.exit_code, self.timeout_s)


def run_step(guest: Guest, command: str, env: Mapping[str, str], timeout: float, cwd: str) -> InstallerRun:
    """Run an installer-like command, keeping its output; a hang is recorded, not raised."""
    started = time.monotonic()
    try:
        result = guest.run(command, timeout=timeout, env=env, cwd=cwd)
    except RemoteTimeout as exc:
        # What the user would have seen until the kill, then the harness's note that it killed it.
        output = _joined(exc.stdout, exc.stderr)
        return InstallerRun(command, None, _joined(output, f"[killed after {timeout:g} s]"),
                            time.monotonic() - started, timeout)
    return InstallerRun(command, result.exit_code, _joined(result.stdout, result.stderr), result.duration_s, timeout)


def _joined(first: str, second: str) -> str:
    if not second:
        return first
    return first + ("" if not first or first.endswith("\n") else "\n") + second


def run_installer(guest: Guest, bound: BoundProfile) -> InstallerRun:
    """The profile's installer as bound for this guest, traced when the profile asks for it."""
    spec = bound.install
    if not spec.trace:
        return run_step(guest, spec.command, dict(spec.env), spec.timeout_s, bound.context["home"])
    # bash reads SHELLOPTS at start-up, so a /bin/sh installer that re-execs bash is traced too.
    traced = f"env SHELLOPTS=xtrace PS4={shlex.quote(TRACE_PS4)} /bin/sh -c {shlex.quote(spec.command)}"
    run = run_step(guest, traced, dict(spec.env), spec.timeout_s, bound.context["home"])
    return dataclasses.replace(run, command=spec.command)  # reports show the profile's command
