"""What a guest's file system holds: snapshots taken before and after a step, the changes between
them, and the manifest (paths, modes, digests) of an installed tree.

The install takes them and the checks compare them; nothing here runs an installer.
"""

from __future__ import annotations

import fnmatch
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.errors import InfrastructureError
from harness.guest import Guest, as_root_if_possible

SNAPSHOT_TIMEOUT_S = 600.0


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
