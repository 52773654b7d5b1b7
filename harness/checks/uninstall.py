"""The uninstall, judged: it succeeded and left the guest as it was before the install (what the
profile's ``uninstall.leaves`` lists may stay). The uninstall itself is :mod:`harness.install.uninstall`."""

from __future__ import annotations

from harness.checks.shared import expect_none
from harness.guest_tree import leftovers
from harness.install.first import Installed
from harness.install.uninstall import Uninstalled


def judge_uninstall(installed: Installed, uninstalled: Uninstalled) -> None:
    """Raises AssertionError when the uninstaller failed or something of the release remains."""
    run = uninstalled.uninstaller
    if not run.ok:
        raise AssertionError(f"the uninstaller exited with {run.exit_code}:\n{run.tail()}")
    spec = installed.bound.uninstall
    leaves = list(spec.leaves) if spec is not None else []
    writes = [*installed.allowed, *installed.bound.server.writes]
    left = leftovers(installed.before, uninstalled.after, leaves, writes)
    expect_none([c.describe() for c in left], "the uninstall left things behind")
