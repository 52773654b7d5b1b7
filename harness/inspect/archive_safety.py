"""Archive safety: members that would land outside the install directory, or land dangerously.

Checked per archive member as stored (raw names), then over the deployed view (collisions,
links). Case-only collisions are errors for macOS, whose default file system folds case.
"""

from __future__ import annotations

import posixpath
import stat
from collections import defaultdict

from harness.inspect.archive import Entry, ReleaseContents
from harness.inspect.findings import Finding, Severity
from harness.inspect.targets import Target


def _where(entry: Entry) -> str:
    return f" (in {entry.archive})" if entry.archive else ""


def _member_findings(entry: Entry) -> list[Finding]:
    findings = []
    name = entry.member
    if name.startswith("/"):
        findings.append(Finding("archive.absolute_path", "error", entry.path, f"member {name!r} is absolute{_where(entry)}",
                                "store members relative to the archive root (tar -C DIR .)"))
    if ".." in name.split("/") or entry.path.startswith("../") or entry.path == "..":
        findings.append(Finding("archive.parent_reference", "error", entry.path, f"member {name!r} contains '..'{_where(entry)}",
                                "store members relative to the archive root without '..'"))
    if entry.kind in ("device", "fifo", "other"):
        findings.append(Finding("archive.special_file", "error", entry.path, f"{entry.kind} member {name!r}{_where(entry)}",
                                "ship only regular files, directories and links"))
    if entry.kind in ("file", "dir", "hardlink") and entry.mode & (stat.S_ISUID | stat.S_ISGID):
        bits = "setuid" if entry.mode & stat.S_ISUID else "setgid"
        findings.append(Finding("archive.setuid", "error", entry.path, f"{bits} bit set (mode {entry.mode & 0o7777:o}){_where(entry)}",
                                "clear it: chmod u-s,g-s"))
    if entry.kind in ("file", "dir") and entry.mode & stat.S_IWOTH:
        findings.append(Finding("archive.world_writable", "error", entry.path,
                                f"world-writable {entry.kind} (mode {entry.mode & 0o7777:o}){_where(entry)}",
                                "clear the bit: chmod o-w (and build with umask 022)"))
    return findings


def _link_findings(entry: Entry) -> list[Finding]:
    if entry.kind == "symlink":
        if entry.linkname.startswith("/"):
            return [Finding("archive.link_outside", "error", entry.path, f"symlink to absolute {entry.linkname}{_where(entry)}",
                            "make the link relative to its own directory")]
        target = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), entry.linkname))
    elif entry.kind == "hardlink":
        # A hard link names a member of its own archive, relative to that archive's root.
        prefix = posixpath.dirname(entry.archive) if entry.archive else ""
        target = posixpath.normpath(posixpath.join(prefix, entry.linkname.lstrip("/")))
        if entry.linkname.startswith("/"):
            target = "../" + target
    else:
        return []
    if target == ".." or target.startswith("../"):
        return [Finding("archive.link_outside", "error", entry.path,
                        f"{entry.kind} to {entry.linkname} leaves the release{_where(entry)}",
                        "point the link at a file inside the release")]
    return []


def _collision_findings(contents: ReleaseContents, target: Target) -> list[Finding]:
    by_path: dict[str, list[Entry]] = defaultdict(list)
    for entry in contents.entries:
        if entry.path:
            by_path[entry.path].append(entry)
    findings = []
    for path, entries in sorted(by_path.items()):
        if len(entries) > 1 and not all(e.kind == "dir" for e in entries):
            sources = sorted({e.archive or "the release" for e in entries})
            findings.append(Finding("archive.collision", "error", path,
                                    f"stored {len(entries)} times (from {', '.join(sources)}); the last one wins on extraction",
                                    "ship each path once: remove the stale copy or layer archive"))
    folded: dict[str, set[str]] = defaultdict(set)
    for path in by_path:
        folded[path.casefold()].add(path)
    severity: Severity = "error" if target.os == "macos" else "warning"
    for variants in folded.values():
        if len(variants) > 1:
            first, *others = sorted(variants)
            findings.append(Finding("archive.case_collision", severity, first,
                                    f"differs only in case from {', '.join(others)}: one overwrites the other on macOS",
                                    "rename one of them"))
    return findings


ESCAPE_RULES = frozenset({"archive.absolute_path", "archive.parent_reference", "archive.link_outside"})


def escaping_members(contents: ReleaseContents) -> list[Finding]:
    """The findings of the rules whose members would land outside the unpack directory."""
    found = [f for entry in contents.entries for f in (*_member_findings(entry), *_link_findings(entry))]
    return [f for f in found if f.check in ESCAPE_RULES]


def check_archive_safety(contents: ReleaseContents, target: Target) -> list[Finding]:
    findings = [Finding("archive.unreadable_layer", "error", path, f"layer archive cannot be read: {error}",
                        "re-create the layer archive (venvstacks publish) and re-pack the release")
                for path, error in contents.read_errors]
    for entry in contents.entries:
        findings += _member_findings(entry)
        findings += _link_findings(entry)
    return findings + _collision_findings(contents, target)
