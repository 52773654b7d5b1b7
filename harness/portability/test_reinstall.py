"""Installing again: over the same release (idempotence), and over the previous release (upgrade)."""

from __future__ import annotations

import pytest

from harness.checks.reinstall import judge_reinstall, judge_upgrade
from harness.suite.deployment import TwinResult, UpgradeResult
from harness.target import Target

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_reinstall_idempotent(target: Target, install_twin: TwinResult, report) -> None:
    """The installer run again over its own install succeeds, leaves a fresh install's tree, and
    the server then works."""
    again = install_twin.reinstall
    if again is None:
        pytest.skip(f"blocked: the first install in the second VM failed (exit {install_twin.installed.installer.exit_code})")
    run = again.installer
    report.attach_text(f"$ {run.command}\n{run.output}\n[exit {run.exit_code}]\n\nserver: {again.served}",
                       "reinstall output")
    report.attach_text(again.manifest.text(), "installed manifest after reinstalling")
    judge_reinstall(install_twin.installed.manifest, again, target.profile.install.reinstall_ignore)


def test_upgrade_clean(target: Target, upgrade_run: UpgradeResult, install_twin: TwinResult, report) -> None:
    """Installed over the previous release, this release leaves none of the old files it does not ship."""
    up = upgrade_run.upgrade
    report.attach_text(f"$ {up.first.command}\n{up.first.output}\n[exit {up.first.exit_code}]\n\n"
                       f"$ {up.upgrade.command}\n{up.upgrade.output}\n[exit {up.upgrade.exit_code}]", "upgrade output")
    report.attach_text(up.manifest.text(), "installed manifest after the upgrade")
    leaves = target.profile.upgrade.leaves if target.profile.upgrade else ()
    judge_upgrade(up, install_twin.installed.manifest, leaves)
