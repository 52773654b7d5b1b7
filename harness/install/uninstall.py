"""Uninstalling with the profile's uninstaller, and what the guest's disk looks like afterwards.

:mod:`harness.checks.uninstall` compares that snapshot with the one taken before the install.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.guest import Guest
from harness.guest_tree import Snapshot, take_snapshot
from harness.install.first import Installed, PhaseTimer, snapshot_exclusions
from harness.install.run import InstallerRun, run_step


@dataclass(frozen=True)
class Uninstalled:
    uninstaller: InstallerRun
    after: Snapshot  # the guest's disk once the uninstaller finished


def uninstall(guest: Guest, installed: Installed, phase: PhaseTimer) -> Uninstalled | None:
    """The profile's uninstaller over ``installed`` (timed as phase "uninstall"); None when the
    profile declares none."""
    bound = installed.bound
    spec = bound.uninstall
    if spec is None:
        return None
    with phase("uninstall"):
        run = run_step(guest, spec.command, dict(spec.env), spec.timeout_s, bound.context["home"])
    return Uninstalled(run, take_snapshot(guest, installed.facts.os, snapshot_exclusions(bound)))
