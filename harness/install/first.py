"""The first install in a clean guest: copy in, run the installer offline, see what it wrote.

    copy tarball (+ installer files) -> snapshot -> run installer -> snapshot
        -> manifest of the installed tree

It returns an :class:`Installed` value holding the installer's run, both file-system snapshots,
the scratch places before and after, and the manifest; :mod:`harness.checks` judges it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from harness.guest import Guest, as_root_if_possible
from harness.guest_tree import (
    Change,
    Manifest,
    Snapshot,
    changes,
    take_manifest,
    take_snapshot,
    under,
)
from harness.install.facts import GuestFacts
from harness.install.run import InstallerRun, run_installer
from harness.install.upload import UPLOAD_DIR, upload
from harness.profile import BoundProfile, Profile
from harness.release import Release

# Never part of a snapshot: kernel views, runtime state, temp dirs, logs and caches the OS itself
# churns. A release writing there is not "installing" anything that outlives a reboot.
VOLATILE_PATHS: tuple[str, ...] = (
    "/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/log", "/var/cache",
    "/var/lib/systemd", "/var/lib/dhcp", "/var/spool", "/lost+found", "/private/tmp", "/private/var",
    "/System/Volumes",
)

# Times a named phase and records it (the suite passes the report's phase recorder).
PhaseTimer = Callable[[str], AbstractContextManager[None]]


@dataclass(frozen=True)
class Installed:
    """A release installed (or not) in one guest, with everything the checks need to judge it."""

    release: Release
    facts: GuestFacts
    bound: BoundProfile
    installer: InstallerRun
    before: Snapshot
    after: Snapshot
    manifest: Manifest
    allowed: tuple[str, ...]  # rendered install.writes
    roots: tuple[str, ...]  # rendered install.tree
    copy_s: float
    timings: Mapping[str, float] = field(default_factory=dict)
    # Entries of the scratch places (temp dirs, the user's cache) just before and after the installer.
    scratch_before: frozenset[str] = frozenset()
    scratch_after: frozenset[str] = frozenset()

    @property
    def changes(self) -> list[Change]:
        return changes(self.before, self.after)

    @property
    def context(self) -> Mapping[str, str]:
        return self.bound.context

    @property
    def scratch_left(self) -> list[str]:
        """What the installer left in the scratch places (the harness's own upload excluded)."""
        return sorted(p for p in self.scratch_after - self.scratch_before if not under(p, UPLOAD_DIR))


def snapshot_exclusions(bound: BoundProfile) -> tuple[str, ...]:
    return VOLATILE_PATHS + (UPLOAD_DIR,) + bound.install.volatile


SCRATCH_DEPTH = 2  # deep enough to name an unpack directory, shallow enough to stay quick


def scratch_places(home: str) -> tuple[str, ...]:
    """Where installers park temporary files: the snapshots leave these out on purpose."""
    return ("/tmp", "/var/tmp", f"{home}/.cache")


def list_scratch(guest: Guest, home: str) -> frozenset[str]:
    places = " ".join(shlex.quote(p) for p in scratch_places(home))
    result = guest.run(as_root_if_possible(f"find {places} -mindepth 1 -maxdepth {SCRATCH_DEPTH} 2>/dev/null; true"),
                       timeout=120)
    return frozenset(line for line in result.stdout.splitlines() if line)


def install_release(guest: Guest, profile: Profile, release: Release, facts: GuestFacts,
                    phase: PhaseTimer) -> Installed:
    bound = facts.bind(profile, release)
    excluded = snapshot_exclusions(bound)
    with phase("copy"):
        copy_s = upload(guest, release, profile)
    before = take_snapshot(guest, facts.os, excluded)
    scratch_before = list_scratch(guest, facts.home)
    with phase("install"):
        installer = run_installer(guest, bound)
    scratch_after = list_scratch(guest, facts.home)
    after = take_snapshot(guest, facts.os, excluded)
    roots = bound.install.tree
    manifest = take_manifest(guest, facts.os, roots, bound.install.manifest_ignore)
    return Installed(release, facts, bound, installer, before, after, manifest, bound.install.writes, roots, copy_s,
                     scratch_before=scratch_before, scratch_after=scratch_after)
