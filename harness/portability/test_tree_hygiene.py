"""The installed tree is safe to leave on a user's machine, and the installer cleans up after itself."""

from __future__ import annotations

import pytest

from harness.checks.hygiene import scan_tree, unexpected_leftovers
from harness.checks.shared import expect_none
from harness.install.first import Installed, scratch_places
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_tree_hygiene(deployment: Deployment, installed: Installed, report) -> None:
    """No world-writable entry, setuid/setgid file, device file or entry owned by another user."""
    found = scan_tree(deployment.machine, installed.roots, installed.facts.user)
    report.attach_text("\n".join(f.describe() for f in found) or "(nothing)", "installed-tree permission findings")
    expect_none([f.describe() for f in found], f"unsafe entries in the installed tree {', '.join(installed.roots)}")


def test_installer_temp_clean(deployment: Deployment, installed: Installed, report) -> None:
    """The installer leaves nothing in /tmp, /var/tmp or the user's cache (install.temp_leaves aside)."""
    left = installed.scratch_left
    allowed = list(installed.bound.install.temp_leaves)
    report.attach_text("\n".join(left) or "(nothing new)", "new entries in the scratch places after the install")
    expect_none(unexpected_leftovers(left, allowed),
                f"the installer left files in {', '.join(scratch_places(installed.facts.home))}")
