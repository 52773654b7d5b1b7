"""Uninstalling leaves the machine as it was before the install (server run included)."""

from __future__ import annotations

import pytest

from harness.checks.uninstall import judge_uninstall
from harness.suite.deployment import TwinResult
from harness.target import Target

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_uninstall_clean(target: Target, install_twin: TwinResult, report) -> None:
    """After install, serve, stop and the profile's uninstall, nothing of the release remains."""
    profile = target.profile
    if profile.uninstall is None:
        pytest.skip(f"the {profile.name} profile has no [uninstall] command")
    twin = install_twin.installed
    uninstalled = install_twin.uninstall
    if uninstalled is None:
        pytest.skip(f"blocked: the install in the second VM failed (exit {twin.installer.exit_code})")
    run = uninstalled.uninstaller
    report.attach_text(f"{install_twin.served}\n$ {run.command}\n{run.output}\n[exit {run.exit_code}]", "uninstall output")
    judge_uninstall(twin, uninstalled)
