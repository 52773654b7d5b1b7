"""Upgrading: the older release installed with its own installer, then this release over it.

The older release gets an upload directory of its own, so the two tarballs never mix. Whether
the upgrade leaves files this release does not ship is judged in :mod:`harness.checks.reinstall`.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.guest import Guest
from harness.guest_tree import Manifest, take_manifest
from harness.install.facts import GuestFacts
from harness.install.first import PhaseTimer
from harness.install.run import InstallerRun, run_installer, run_step
from harness.install.upload import UPLOAD_DIR, upload
from harness.profile import Profile
from harness.release import Release

PREVIOUS_UPLOAD_DIR = UPLOAD_DIR + "-previous"


@dataclass(frozen=True)
class Upgrade:
    previous: Release
    first: InstallerRun  # the older release's own install
    upgrade: InstallerRun  # this release installed over it
    old_manifest: Manifest
    manifest: Manifest


def install_previous(guest: Guest, profile: Profile, previous: Release, facts: GuestFacts) -> InstallerRun:
    """The older release with its own installer, from an upload directory of its own."""
    spec = profile.upgrade
    upload(guest, previous, profile, PREVIOUS_UPLOAD_DIR)
    bound = facts.bind(profile, previous, PREVIOUS_UPLOAD_DIR)
    command = bound.text(spec.command if spec else profile.install.command, "upgrade.command")
    return run_step(guest, command, dict(bound.install.env), bound.install.timeout_s, facts.home)


def upgrade(guest: Guest, profile: Profile, release: Release, previous: Release, facts: GuestFacts,
            phase: PhaseTimer) -> Upgrade:
    """``previous`` installed (phase "previous"), then ``release`` over it (phase "install")."""
    bound = facts.bind(profile, release)
    roots = bound.install.tree
    with phase("previous"):
        first = install_previous(guest, profile, previous, facts)
    old = take_manifest(guest, facts.os, roots, bound.install.manifest_ignore)
    with phase("install"):
        upload(guest, release, profile)
        run = run_installer(guest, bound)
    manifest = take_manifest(guest, facts.os, roots, bound.install.manifest_ignore)
    return Upgrade(previous, first, run, old, manifest)
