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
import fnmatch
import posixpath
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.errors import InfrastructureError, RemoteTimeout
from harness.install_failure import TRACE_PS4, InstallFailure, diagnose
from harness.profile import BoundProfile, Profile, bind
from harness.release import Release
from harness.ssh import CommandResult, Transfer

UPLOAD_DIR = "/tmp/harness-upload"
# Never part of a snapshot: kernel views, runtime state, temp dirs, logs and caches the OS itself
# churns. A release writing there is not "installing" anything that outlives a reboot.
VOLATILE_PATHS: tuple[str, ...] = (
    "/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/log", "/var/cache",
    "/var/lib/systemd", "/var/lib/dhcp", "/var/spool", "/lost+found", "/private/tmp", "/private/var",
    "/System/Volumes",
)
SNAPSHOT_TIMEOUT_S = 600.0

# Times a named phase and records it (the suite passes the report's phase recorder).
PhaseTimer = Callable[[str], AbstractContextManager[None]]


class Guest(Protocol):
    """What installing needs from a VM (``harness.vm.machine.Machine`` provides it)."""

    def run(self, cmd: str, timeout: float = ..., env: Mapping[str, str] | None = None,
            cwd: str | None = None, check: bool = False, stdin: bytes | None = None) -> CommandResult: ...

    def put(self, local: Path | str, remote: str, mode: int | None = None, timeout: float = ...) -> Transfer: ...

    def get(self, remote: str, local: Path | str, timeout: float = ...) -> Transfer: ...

    def forward(self, guest_port: int, guest_host: str = ...) -> AbstractContextManager[int]: ...


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


# -- snapshots ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file-system entry as a snapshot sees it."""

    kind: str  # f (file), d (directory), l (symlink), other letters as find(1) prints them
    mode: str  # octal permission bits
    size: int
    mtime: str
    target: str = ""  # symlink target


@dataclass(frozen=True)
class Snapshot:
    entries: Mapping[str, Entry]
    excluded: tuple[str, ...]
    taken_at: float


def _prune_expression(excluded: Iterable[str]) -> str:
    tests = " -o ".join(f"-path {shlex.quote(p)}" for p in excluded)
    return f"\\( {tests} \\) -prune -o"


def snapshot_command(guest_os: str, excluded: Sequence[str]) -> str:
    """One NUL-separated record per entry: path, type, mode, size, mtime, link target."""
    prune = _prune_expression(excluded)
    if guest_os == "linux":
        return f"find / -xdev {prune} -printf '%p\\0%y\\0%m\\0%s\\0%T@\\0%l\\0'"
    # BSD find has no -printf; stat(1) prints the same fields (darwin guests).
    return (f"find / -xdev {prune} -print0 | xargs -0 stat -f "
            "'%N%t%HT%t%Lp%t%z%t%m%t%Y' | tr '\\t\\n' '\\0\\0'")


_BSD_KINDS = {"Regular File": "f", "Directory": "d", "Symbolic Link": "l", "Fifo File": "p", "Socket": "s",
              "Character Device": "c", "Block Device": "b"}


def parse_snapshot(output: str) -> dict[str, Entry]:
    fields = output.split("\0")
    entries: dict[str, Entry] = {}
    for i in range(0, len(fields) - 5, 6):
        path, kind, mode, size, mtime, target = fields[i:i + 6]
        kind = _BSD_KINDS.get(kind, kind)
        entries[path] = Entry(kind, mode, int(size or 0), mtime, target)
    return entries


def as_root_if_possible(command: str) -> str:
    """Run ``command`` as root when passwordless sudo works (to see root-only dirs), else as is."""
    quoted = shlex.quote(command)
    return f"if sudo -n true 2>/dev/null; then sudo -n /bin/sh -c {quoted}; else /bin/sh -c {quoted}; fi"


def take_snapshot(guest: Guest, guest_os: str, excluded: Sequence[str]) -> Snapshot:
    result = guest.run(as_root_if_possible(snapshot_command(guest_os, excluded)), timeout=SNAPSHOT_TIMEOUT_S)
    # find exits 1 when some directory is unreadable (no sudo); the rest is still valid.
    if result.exit_code not in (0, 1) or not result.stdout:
        raise InfrastructureError(
            f"file-system snapshot failed in the guest (exit {result.exit_code})",
            hint="the guest lacks find(1) or ran out of time; see the VM's command log",
            detail=result.stderr[-2000:],
        )
    return Snapshot(parse_snapshot(result.stdout), tuple(excluded), time.time())


@dataclass(frozen=True)
class Change:
    path: str
    what: str  # created | deleted | modified | mode | type

    def describe(self) -> str:
        return f"{self.what}: {self.path}"


def under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/") or root == "/"


def changes(before: Snapshot, after: Snapshot) -> list[Change]:
    """What differs between two snapshots. A directory whose only change is its mtime is not
    reported: an entry created or removed inside it is reported on its own."""
    out: list[Change] = []
    for path, new in after.entries.items():
        old = before.entries.get(path)
        if old is None:
            out.append(Change(path, "created"))
        elif old.kind != new.kind:
            out.append(Change(path, "type"))
        elif old.mode != new.mode:
            out.append(Change(path, "mode"))
        elif new.kind != "d" and (old.size, old.mtime, old.target) != (new.size, new.mtime, new.target):
            out.append(Change(path, "modified"))
    out += [Change(path, "deleted") for path in before.entries if path not in after.entries]
    return sorted(out, key=lambda c: c.path)


def outside(found: Iterable[Change], allowed: Sequence[str]) -> list[Change]:
    """Changes not under any allowed path. Creating a missing parent of an allowed path (e.g.
    ``~/.local`` for ``~/.local/bin``) is part of writing there, so it is allowed too."""
    allowed = [a.rstrip("/") for a in allowed]
    result = []
    for change in found:
        if any(under(change.path, a) for a in allowed):
            continue
        if change.what == "created" and any(under(a, change.path) for a in allowed):
            continue
        result.append(change)
    return result


# -- manifest of the installed tree ------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # "<root>/<relative path>" with the root as the profile names it
    kind: str
    mode: str
    digest: str  # sha256 for files, the target for symlinks, "" otherwise

    def line(self) -> str:
        return f"{self.kind} {self.mode} {self.digest or '-'} {self.path}"


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.entries}

    def text(self) -> str:
        return "".join(e.line() + "\n" for e in self.entries)


def manifest_command(guest_os: str, root: str) -> str:
    q = shlex.quote(root)
    if guest_os == "linux":
        listing = f"find {q} -printf '%p\\0%y\\0%m\\0%l\\0'"
        hashing = f"find {q} -type f -exec sha256sum -z {{}} +"
    else:
        listing = f"find {q} -print0 | xargs -0 stat -f '%N%t%HT%t%Lp%t%Y' | tr '\\t\\n' '\\0\\0'"
        hashing = f"find {q} -type f -exec shasum -a 256 {{}} + | tr '\\n' '\\0'"
    return f"test -e {q} || exit 0; {listing}; printf '\\0--hashes--\\0'; {hashing}"


def parse_manifest(output: str) -> tuple[list[tuple[str, str, str, str]], dict[str, str]]:
    listing, _, hashes = output.partition("\0--hashes--\0")
    fields = listing.split("\0")
    rows = [tuple(fields[i:i + 4]) for i in range(0, len(fields) - 3, 4)]
    digests = {}
    for record in hashes.split("\0"):
        if record:
            digest, _, path = record.partition("  ")
            digests[path] = digest
    return [(p, _BSD_KINDS.get(k, k), m, t) for p, k, m, t in rows], digests  # type: ignore[misc]


def take_manifest(guest: Guest, guest_os: str, roots: Sequence[str], ignore: Sequence[str] = (),
                  timeout: float = 600.0) -> Manifest:
    entries: list[ManifestEntry] = []
    for root in roots:
        result = guest.run(manifest_command(guest_os, root), timeout=timeout)
        if not result.ok:
            raise InfrastructureError(
                f"could not list the installed tree {root} (exit {result.exit_code})",
                detail=result.stderr[-2000:],
            )
        rows, digests = parse_manifest(result.stdout)
        for path, kind, mode, target in rows:
            if any(fnmatch.fnmatchcase(path, pattern) for pattern in ignore):
                continue
            digest = digests.get(path, "") if kind == "f" else target
            entries.append(ManifestEntry(path, kind, mode, digest))
    return Manifest(tuple(sorted(entries, key=lambda e: e.path)))


def manifest_differences(a: Manifest, b: Manifest, limit: int = 40,
                         names: tuple[str, str] = ("the first VM", "the second VM")) -> list[str]:
    left, right = a.by_path(), b.by_path()
    out = []
    for path in sorted(left.keys() | right.keys()):
        x, y = left.get(path), right.get(path)
        if x == y:
            continue
        if x is None:
            out.append(f"only in {names[1]}: {y.line()}")  # type: ignore[union-attr]
        elif y is None:
            out.append(f"only in {names[0]}: {x.line()}")
        else:
            out.append(f"differs: {x.line()}  <->  {y.kind} {y.mode} {y.digest or '-'}")
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more"]
    return out


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
        return "\n".join(self.output.splitlines()[-lines:])

    def failure(self) -> InstallFailure:
        """What went wrong, named by step, first error line, exit code and a known-cause hint."""
        return diagnose(self.output, self.exit_code)


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
        return InstallerRun(command, None, f"{exc.detail}\n[killed after {timeout:g} s]",
                            time.monotonic() - started, timeout)
    output = result.stdout
    if result.stderr:
        output += ("" if not output or output.endswith("\n") else "\n") + result.stderr
    return InstallerRun(command, result.exit_code, output, result.duration_s, timeout)


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


def leftovers(before: Snapshot, after: Snapshot, leaves: Sequence[str], writes: Sequence[str]) -> list[Change]:
    """What an uninstall left behind: changes since before the install, except the paths it may
    leave on purpose and shared parent directories of the release's paths (``~/.local/bin``)."""
    result = []
    for change in outside(changes(before, after), leaves):
        entry = after.entries.get(change.path)
        shared_parent = (change.what == "created" and entry is not None and entry.kind == "d"
                         and any(under(w, change.path) and w.rstrip("/") != change.path for w in writes))
        if not shared_parent:
            result.append(change)
    return result
