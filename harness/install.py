"""Installing a release in a clean guest: copy in, run the installer offline, see what it wrote.

    probe guest -> copy tarball (+ installer files) -> snapshot -> run installer -> snapshot
                -> manifest of the installed tree

Nothing here decides pass or fail: it returns an :class:`Installed` value holding the installer's
result, both file-system snapshots and the manifest; the checks in ``harness.portability`` judge it.
An installer that fails or hangs is a finding about the release, so it is recorded, not raised;
only the harness's own trouble (SSH, copying, a snapshot command failing) raises.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shlex
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from harness.bounded import last_lines
from harness.errors import InfrastructureError, RemoteTimeout
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
from harness.install_failure import TRACE_PS4, InstallFailure, diagnose
from harness.profile import BoundProfile, Profile, bind
from harness.release import Release

UPLOAD_DIR = "/tmp/harness-upload"
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
class GuestFacts:
    os: str  # linux | darwin
    arch: str
    user: str
    home: str
    pythons: tuple[str, ...]  # interpreters found on PATH (a clean image has none)

    def bind(self, profile: Profile, release: Release, upload: str = UPLOAD_DIR) -> BoundProfile:
        """The profile with every template rendered for this guest and release (uploaded to ``upload``)."""
        return bind(profile, {"home": self.home, "user": self.user, "upload": upload,
                              "tarball": f"{upload}/{release.filename}", "version": release.name.version})


PYTHON_NAMES = ("python3", "python", "python2")


def probe_guest(guest: Guest) -> GuestFacts:
    script = (
        "uname -s; uname -m; id -un; printf '%s\\n' \"$HOME\"; "
        + "; ".join(f"command -v {name} || true" for name in PYTHON_NAMES)
    )
    result = guest.run(script, timeout=60)
    lines = result.stdout.splitlines()
    if not result.ok or len(lines) < 4:
        raise InfrastructureError(
            f"could not probe the guest (exit {result.exit_code})",
            hint="the guest's shell is not POSIX or SSH is unwell; see the VM's command log",
            detail=result.stderr[-2000:],
        )
    arch = {"aarch64": "arm64", "amd64": "x86_64"}.get(lines[1], lines[1])
    return GuestFacts(os=lines[0].lower(), arch=arch, user=lines[2], home=lines[3],
                      pythons=tuple(line for line in lines[4:] if line.strip()))


# -- the install itself ------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallerRun:
    command: str
    exit_code: int | None  # None when it was killed at the timeout
    output: str  # stdout then stderr, as the user would have seen them
    duration_s: float
    timeout_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None

    def tail(self, lines: int = 25) -> str:
        return last_lines(self.output, lines)

    def failure(self) -> InstallFailure:
        """What went wrong, named by step, first error line, exit code and a known-cause hint."""
        return diagnose(self.output, self.exit_code, self.timeout_s)


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


def upload(guest: Guest, release: Release, profile: Profile, directory: str = UPLOAD_DIR) -> float:
    """Copy the tarball, its checksums file and the installer files beside it into the guest."""
    started = time.monotonic()
    guest.run(f"rm -rf {directory} && mkdir -p {directory}", timeout=60, check=True)
    sent = guest.put(release.path, f"{directory}/{release.filename}")
    if sent.sha256 != release.sha256:
        raise InfrastructureError(
            f"{release.path} is not the tarball checked at the start of the run "
            f"(sha256 {sent.sha256}, expected {release.sha256})",
            hint="something rewrote the release file during the run; run again once builds are done",
        )
    for name in profile.install.files:
        local = release.path.parent / name
        if not local.is_file():
            raise InfrastructureError(
                f"the profile's install.files lists {name}, but {local} does not exist",
                hint="put the installer next to the tarball (the release build writes it to dist/)",
            )
        guest.put(local, f"{directory}/{posixpath.basename(name)}", mode=0o755)
    if release.checksum.file is not None:
        # Published beside the tarball, so an installer that verifies it finds it there too.
        guest.put(release.checksum.file, f"{directory}/{release.checksum.file.name}")
    return time.monotonic() - started


def run_step(guest: Guest, command: str, env: Mapping[str, str], timeout: float, cwd: str) -> InstallerRun:
    """Run an installer-like command, keeping its output; a hang is recorded, not raised."""
    started = time.monotonic()
    try:
        result = guest.run(command, timeout=timeout, env=env, cwd=cwd)
    except RemoteTimeout as exc:
        # What the user would have seen until the kill, then the harness's note that it killed it.
        output = _joined(exc.stdout, exc.stderr)
        return InstallerRun(command, None, _joined(output, f"[killed after {timeout:g} s]"),
                            time.monotonic() - started, timeout)
    return InstallerRun(command, result.exit_code, _joined(result.stdout, result.stderr), result.duration_s, timeout)


def _joined(first: str, second: str) -> str:
    if not second:
        return first
    return first + ("" if not first or first.endswith("\n") else "\n") + second


def run_installer(guest: Guest, bound: BoundProfile) -> InstallerRun:
    spec = bound.install
    if not spec.trace:
        return run_step(guest, spec.command, dict(spec.env), spec.timeout_s, bound.context["home"])
    # bash reads SHELLOPTS at start-up, so a /bin/sh installer that re-execs bash is traced too.
    traced = f"env SHELLOPTS=xtrace PS4={shlex.quote(TRACE_PS4)} /bin/sh -c {shlex.quote(spec.command)}"
    run = run_step(guest, traced, dict(spec.env), spec.timeout_s, bound.context["home"])
    return dataclasses.replace(run, command=spec.command)  # reports show the profile's command


def run_uninstaller(guest: Guest, bound: BoundProfile) -> InstallerRun | None:
    spec = bound.uninstall
    if spec is None:
        return None
    return run_step(guest, spec.command, dict(spec.env), spec.timeout_s, bound.context["home"])


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
