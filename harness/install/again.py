"""Installing again over an install that is there: the same installer with the same tarball.

Configuration tools demand it of every step (idempotence); whether the tree matches a fresh
install's and the server still works is judged in :mod:`harness.checks.reinstall`.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.guest import Guest
from harness.guest_tree import Manifest, take_manifest
from harness.install.first import Installed
from harness.install.run import InstallerRun, run_installer


@dataclass(frozen=True)
class Reinstall:
    installer: InstallerRun
    manifest: Manifest
    served: str = "not attempted: the reinstall failed"  # the server started on the reinstalled tree
    server_ok: bool = False


def install_again(guest: Guest, installed: Installed) -> Reinstall:
    """The installer run once more over ``installed``, and the tree it leaves (not yet served)."""
    bound = installed.bound
    run = run_installer(guest, bound)
    return Reinstall(run, take_manifest(guest, installed.facts.os, installed.roots, bound.install.manifest_ignore))
