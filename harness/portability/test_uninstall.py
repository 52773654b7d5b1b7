"""Uninstalling leaves the machine as it was before the install (server run included)."""

from __future__ import annotations

import pytest

from harness.guest_tree import leftovers
from harness.suite.checks import expect_none
from harness.suite.deployment import TwinResult
from harness.target import Target

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_uninstall_clean(target: Target, install_twin: TwinResult, report) -> None:
    """After install, serve, stop and the profile's uninstall, nothing of the release remains."""
    profile = target.profile
    if profile.uninstall is None:
        pytest.skip(f"the {profile.name} profile has no [uninstall] command")
    twin = install_twin.installed
    if install_twin.uninstall is None or install_twin.after_uninstall is None:
        pytest.skip(f"blocked: the install in the second VM failed (exit {twin.installer.exit_code})")
    run = install_twin.uninstall
    report.attach_text(f"{install_twin.served}\n$ {run.command}\n{run.output}\n[exit {run.exit_code}]", "uninstall output")
    assert run.ok, f"the uninstaller exited with {run.exit_code}:\n{run.tail()}"
    assert twin.bound.uninstall is not None
    leaves = list(twin.bound.uninstall.leaves)
    writes = [*twin.allowed, *twin.bound.server.writes]
    left = leftovers(twin.before, install_twin.after_uninstall, leaves, writes)
    expect_none([c.describe() for c in left], "the uninstall left things behind")
