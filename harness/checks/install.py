"""The first install, judged: it succeeded offline and left what it promised, it wrote only where
the profile allows, and two clean guests end up with the same tree. The install itself is
:mod:`harness.install.first`."""

from __future__ import annotations

from collections.abc import Sequence

from harness.bounded import last_lines
from harness.checks.shared import expect_none
from harness.guest_tree import manifest_differences, outside
from harness.install.failure import without_trace
from harness.install.first import Installed
from harness.install.run import InstallerRun

TAIL_LINES = 12


def installer_failure(run: InstallerRun) -> str | None:
    """Why the installer failed (headline, hint, its last lines as a user saw them), or None."""
    if run.ok:
        return None
    failure = run.failure()
    waited = " (waiting for the network?)" if run.timed_out and not failure.cause else ""
    hint = f"\nhint: {failure.hint}" if failure.hint else ""
    return f"{failure.headline()}{waited}{hint}\nlast output:\n{without_trace_tail(run.output)}"


def without_trace_tail(output: str, lines: int = TAIL_LINES) -> str:
    return last_lines(without_trace(output), lines)


def judge_present(missing: Sequence[str]) -> None:
    """Raises AssertionError when a successful installer left nothing at a path it promised."""
    if missing:
        raise AssertionError(f"the installer reported success but left nothing at {', '.join(missing)}")


def judge_confined(installed: Installed) -> None:
    """Raises AssertionError naming what the installer changed outside the profile's install.writes."""
    stray = outside(installed.changes, installed.allowed)
    expect_none([c.describe() for c in stray], f"the installer wrote outside {', '.join(installed.allowed)}")


def judge_reproducible(installed: Installed, twin: Installed) -> None:
    """Raises AssertionError unless two fresh guests' installed trees are byte-identical."""
    if not twin.installer.ok:
        raise AssertionError(f"the install failed in the second VM: exit {twin.installer.exit_code}\n"
                             f"{twin.installer.tail()}")
    if not installed.manifest.entries:
        raise AssertionError(f"the installed tree {', '.join(installed.roots)} is empty")
    expect_none(manifest_differences(installed.manifest, twin.manifest),
                "the installed trees of two fresh VMs differ (paths, modes or sha256)")
