"""Installing again: over the same release (idempotence) and over the previous release (upgrade).

Idempotence, as configuration tools demand of every step: a second run of the installer succeeds
and leaves the tree a fresh install leaves (what the profile's ``install.reinstall_ignore`` lists
may differ). Upgrade: once the older release is installed, installing this one leaves none of the
older release's files that this one does not ship (the profile's ``upgrade.leaves`` may stay).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from harness.guest import Guest
from harness.guest_tree import Manifest, manifest_differences, take_manifest
from harness.install import UPLOAD_DIR, GuestFacts, InstallerRun, run_installer, run_step, upload
from harness.profile import BoundProfile, Profile
from harness.release import Release

PREVIOUS_UPLOAD_DIR = UPLOAD_DIR + "-previous"


@dataclass(frozen=True)
class Reinstall:
    installer: InstallerRun
    manifest: Manifest
    served: str  # what happened when the server was started on the reinstalled tree
    server_ok: bool


def reinstall(guest: Guest, bound: BoundProfile, facts: GuestFacts,
              roots: Sequence[str]) -> tuple[InstallerRun, Manifest]:
    """The same installer with the same tarball, over the install that is there."""
    run = run_installer(guest, bound)
    return run, take_manifest(guest, facts.os, roots, bound.install.manifest_ignore)


def without(manifest: Manifest, patterns: Sequence[str]) -> Manifest:
    return Manifest(tuple(e for e in manifest.entries if not any(fnmatch.fnmatchcase(e.path, p) for p in patterns)))


def reinstall_differences(fresh: Manifest, again: Manifest, ignore: Sequence[str]) -> list[str]:
    return manifest_differences(without(fresh, ignore), without(again, ignore),
                                names=("the fresh install", "the tree after reinstalling"))


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


def left_behind(upgraded: Manifest, old: Manifest, fresh: Manifest, leaves: Sequence[str]) -> list[str]:
    """Files of the older release still there after the upgrade that a fresh install does not have."""
    shipped = fresh.by_path()
    old_paths = old.by_path()
    return [f"{e.path} (from {'the older release' if e.path in old_paths else 'neither release'})"
            for e in upgraded.entries
            if e.path not in shipped and not any(fnmatch.fnmatchcase(e.path, p) for p in leaves)]
