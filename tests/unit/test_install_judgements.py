"""The install checks' judgements over plain values: what an install step returned, no VM.

Each judgement fails with the message the suite reports (its first line is what a sign-off row
shows), so the messages are pinned here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.checks.conditions import judge_conditions, problems
from harness.checks.install import (
    installer_failure,
    judge_confined,
    judge_present,
    judge_reproducible,
)
from harness.checks.reinstall import judge_reinstall, judge_upgrade
from harness.checks.uninstall import judge_uninstall
from harness.guest_tree import Entry, Manifest, ManifestEntry, Snapshot
from harness.install.again import Reinstall
from harness.install.conditions import ConditionRun
from harness.install.facts import GuestFacts
from harness.install.first import Installed
from harness.install.run import InstallerRun
from harness.install.uninstall import Uninstalled
from harness.install.upgrade import Upgrade
from harness.profile import ConditionSpec, load_profile
from harness.release import ChecksumVerdict, Release
from harness.release_name import parse_release_name

TARBALL = "refapp-v0.1.0-x86_64-linux.tar.gz"
PREVIOUS = "refapp-v0.0.9-x86_64-linux.tar.gz"
FACTS = GuestFacts("linux", "x86_64", "tester", "/home/tester", ())
D = Entry("d", "755", 4096, "1.0")
F = Entry("f", "644", 10, "1.0")


def release(name: str = TARBALL) -> Release:
    return Release(Path("/dist") / name, parse_release_name(name), "0" * 64, 1, ChecksumVerdict(None))


def ran(exit_code: int | None = 0, output: str = "done") -> InstallerRun:
    return InstallerRun("sh install.sh", exit_code, output, 1.0, 600.0)


def manifest(*paths: str) -> Manifest:
    return Manifest(tuple(ManifestEntry(p, "f", "644", "d" + p) for p in paths))


def installed(after: dict[str, Entry] | None = None, tree: Manifest | None = None,
              installer: InstallerRun | None = None) -> Installed:
    bound = FACTS.bind(load_profile("reference"), release())
    before = Snapshot({"/home/tester": D}, (), 0.0)
    return Installed(release(), FACTS, bound, installer or ran(), before,
                     Snapshot({"/home/tester": D, **(after or {})}, (), 1.0),
                     manifest("/l/a") if tree is None else tree, bound.install.writes, bound.install.tree, 0.5)


def failure_of(judge: Callable[..., None], *args: object) -> str:
    with pytest.raises(AssertionError) as caught:
        judge(*args)
    return str(caught.value)


def test_installer_failure_names_the_step_error_and_hint() -> None:
    assert installer_failure(ran()) is None
    said = installer_failure(ran(1, "refapp install: fetching manifest\ncurl: not found\n"))
    assert said is not None
    assert said.splitlines()[0] == ("the installer exited with 1 in `refapp install: fetching manifest`: "
                                    "curl: not found (the installer wants to download with a tool a minimal "
                                    "system lacks)")
    assert "\nlast output:\nrefapp install: fetching manifest\ncurl: not found" in said
    hung = installer_failure(ran(None, "waiting\n[killed after 600 s]"))
    assert hung is not None and hung.startswith("the installer was still running after 600 s and was killed "
                                                "in `waiting` (waiting for the network?)")


def test_present_and_confined() -> None:
    judge_present([])
    assert failure_of(judge_present, ["/a", "/b"]) == "the installer reported success but left nothing at /a, /b"
    judge_confined(installed({"/home/tester/.local": D, "/home/tester/.local/bin": D,
                              "/home/tester/.local/bin/refapp": F}))
    said = failure_of(judge_confined, installed({"/home/tester/.refapp_history": F}))
    assert said.splitlines()[0] == ("the installer wrote outside /home/tester/.local/bin/refapp, "
                                    "/home/tester/.local/share/refapp: created: /home/tester/.refapp_history")


def test_reproducible() -> None:
    judge_reproducible(installed(), installed())
    assert failure_of(judge_reproducible, installed(), installed(installer=ran(2, "x\ny"))) == (
        "the install failed in the second VM: exit 2\nx\ny")
    assert failure_of(judge_reproducible, installed(tree=Manifest(())), installed()).startswith(
        "the installed tree /home/tester/.local/bin/refapp")
    said = failure_of(judge_reproducible, installed(), installed(tree=manifest("/l/a", "/l/b")))
    assert said.splitlines()[0] == ("the installed trees of two fresh VMs differ (paths, modes or sha256): "
                                    "only in the second VM: f 644 d/l/b /l/b")


def test_reinstall() -> None:
    fresh = manifest("/l/a")
    judge_reinstall(fresh, Reinstall(ran(), manifest("/l/a"), "served", True), [])
    assert failure_of(judge_reinstall, fresh, Reinstall(ran(3, "boom"), fresh), []) == (
        "installing over an existing install failed with exit 3:\nboom")
    said = failure_of(judge_reinstall, fresh, Reinstall(ran(), manifest("/l/a", "/l/a.bak"), "served", True), [])
    assert said.splitlines()[0] == ("installing over an existing install leaves a different tree than a fresh "
                                    "install: only in the tree after reinstalling: f 644 d/l/a.bak /l/a.bak")
    judge_reinstall(fresh, Reinstall(ran(), manifest("/l/a", "/l/a.bak"), "served", True), ["*.bak"])
    assert failure_of(judge_reinstall, fresh, Reinstall(ran(), fresh, "the server did not start", False), []) == (
        "the server does not work after reinstalling: the server did not start")


def test_upgrade() -> None:
    fresh, old = manifest("/l/a"), manifest("/l/a", "/l/legacy.py")
    judge_upgrade(Upgrade(release(PREVIOUS), ran(), ran(), old, manifest("/l/a")), fresh, [])
    assert failure_of(judge_upgrade, Upgrade(release(PREVIOUS), ran(1, "old"), ran(), old, fresh), fresh, []) == (
        f"the previous release {PREVIOUS} did not install (exit 1), so the upgrade could not be tried:\nold")
    assert failure_of(judge_upgrade, Upgrade(release(PREVIOUS), ran(), ran(4, "new"), old, fresh), fresh, []) == (
        f"upgrading from {PREVIOUS} failed with exit 4:\nnew")
    left = Upgrade(release(PREVIOUS), ran(), ran(), old, old)
    assert failure_of(judge_upgrade, left, fresh, []).splitlines()[0] == (
        f"upgrading from {PREVIOUS} left files this release does not ship: /l/legacy.py (from the older release)")
    judge_upgrade(left, fresh, ["*/legacy.py"])


def test_conditions() -> None:
    spec = ConditionSpec(name="as_root", home="/root/x", env={})
    good = ConditionRun(spec, "/root/x", "root", ran(), ran())
    broken_check = ConditionRun(spec, "/root/x", "root", ran(), ran(127, "refapp: not found"))
    assert problems(good) == []
    judge_conditions([good])
    said = failure_of(judge_conditions, [good, broken_check])
    assert said.splitlines()[0] == ("the release does not install under 1 of the 2 declared install conditions: "
                                    "as_root (HOME='/root/x', user root, env {}): installed, but `sh install.sh` "
                                    "exited with 127: refapp: not found")


def test_uninstall() -> None:
    first = installed()
    gone = Snapshot({"/home/tester": D}, (), 2.0)
    judge_uninstall(first, Uninstalled(ran(), gone))
    assert failure_of(judge_uninstall, first, Uninstalled(ran(1, "no"), gone)) == "the uninstaller exited with 1:\nno"
    kept = Snapshot({"/home/tester": D, "/home/tester/.refapp": D}, (), 2.0)
    assert failure_of(judge_uninstall, first, Uninstalled(ran(), kept)).splitlines()[0] == (
        "the uninstall left things behind: created: /home/tester/.refapp")
