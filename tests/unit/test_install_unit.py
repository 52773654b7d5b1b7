"""Snapshots, change lists and manifests: the pure parts of installing, without a VM."""

from __future__ import annotations

from harness.guest_tree import (
    Entry,
    Manifest,
    ManifestEntry,
    Snapshot,
    changes,
    leftovers,
    manifest_differences,
    outside,
    parse_manifest,
    parse_snapshot,
    snapshot_command,
)

NUL = "\x00"


def S(paths: dict[str, Entry]) -> Snapshot:
    return Snapshot(paths, (), 0.0)


D = Entry("d", "755", 4096, "1.0")
F = Entry("f", "644", 10, "1.0")


def test_parse_snapshot_nul_records() -> None:
    out = NUL.join(["/a", "d", "755", "4096", "1.5", "", "/a/b c", "f", "644", "3", "2.5", "",
                    "/l", "l", "777", "4", "3.0", "/a", ""])
    parsed = parse_snapshot(out)
    assert parsed["/a/b c"] == Entry("f", "644", 3, "2.5", "")
    assert parsed["/l"].target == "/a"


def test_parse_bsd_kinds() -> None:
    parsed = parse_snapshot(NUL.join(["/x", "Regular File", "644", "1", "9", "", ""]))
    assert parsed["/x"].kind == "f"


def test_snapshot_command_prunes_excluded() -> None:
    cmd = snapshot_command("linux", ["/proc", "/tmp"])
    assert "-path /proc -o -path /tmp" in cmd and "-prune" in cmd and "-printf" in cmd
    assert "stat -f" in snapshot_command("darwin", ["/private/tmp"])


def test_changes_kinds() -> None:
    before = S({"/home": D, "/home/u": D, "/etc/x": F, "/gone": F, "/mode": F})
    after = S({"/home": D, "/home/u": Entry("d", "755", 4096, "9.9"), "/home/u/new": F,
               "/etc/x": Entry("f", "644", 11, "2.0"), "/mode": Entry("f", "600", 10, "1.0")})
    found = {c.path: c.what for c in changes(before, after)}
    # A directory whose only change is its mtime is not reported.
    assert found == {"/home/u/new": "created", "/etc/x": "modified", "/gone": "deleted", "/mode": "mode"}


def test_outside_allows_declared_paths_and_their_new_parents() -> None:
    before = S({"/home/u": D})
    after = S({"/home/u": D, "/home/u/.local": D, "/home/u/.local/bin": D, "/home/u/.local/bin/app": F,
               "/home/u/.local/share": D, "/home/u/.local/share/app": D, "/home/u/.local/share/app/x": F,
               "/home/u/.app_history": F, "/home/u/.local/share/other": D})
    allowed = ["/home/u/.local/bin/app", "/home/u/.local/share/app"]
    stray = [c.path for c in outside(changes(before, after), allowed)]
    assert stray == ["/home/u/.app_history", "/home/u/.local/share/other"]


def test_outside_does_not_confuse_prefixes() -> None:
    found = changes(S({}), S({"/opt/app2": F}))
    assert [c.path for c in outside(found, ["/opt/app"])] == ["/opt/app2"]


def test_leftovers_ignore_shared_parents_only() -> None:
    before = S({"/h": D})
    after = S({"/h": D, "/h/.local": D, "/h/.local/bin": D, "/h/.local/share/app/logs": D, "/h/.local/share": D,
               "/h/.local/share/app": D})
    writes = ["/h/.local/bin/app", "/h/.local/share/app"]
    left = [c.path for c in leftovers(before, after, [], writes)]
    # ~/.local, ~/.local/bin and ~/.local/share are shared parents; the app's own dir is a leftover.
    assert left == ["/h/.local/share/app", "/h/.local/share/app/logs"]
    assert leftovers(before, after, ["/h/.local/share/app"], writes) == []


def test_manifest_parse_and_diff() -> None:
    listing = NUL.join(["/r", "d", "755", "", "/r/a", "f", "644", "", "/r/l", "l", "777", "a"])
    out = listing + NUL + NUL + "--hashes--" + NUL + "ab" * 32 + "  /r/a" + NUL
    rows, digests = parse_manifest(out)
    assert ("/r/l", "l", "777", "a") in rows
    assert digests["/r/a"] == "ab" * 32
    one = Manifest((ManifestEntry("/r/a", "f", "644", "x"), ManifestEntry("/r/b", "f", "644", "y")))
    two = Manifest((ManifestEntry("/r/a", "f", "644", "z"), ManifestEntry("/r/c", "f", "755", "y")))
    diff = manifest_differences(one, two)
    assert diff[0].startswith("differs: f 644 x /r/a") and diff[0].endswith("f 644 z")
    assert "only in the first VM: f 644 y /r/b" in diff
    assert "only in the second VM: f 755 y /r/c" in diff
    assert manifest_differences(one, one) == []
