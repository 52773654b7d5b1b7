"""Installing again, judged: over the same release (idempotence) and over the previous release (upgrade).

Idempotence, as configuration tools demand of every step: a second run of the installer succeeds
and leaves the tree a fresh install leaves (what the profile's ``install.reinstall_ignore`` lists
may differ), and the server then works. Upgrade: once the older release is installed, installing
this one leaves none of the older release's files that this one does not ship (the profile's
``upgrade.leaves`` may stay). The installs themselves are :mod:`harness.install.again` and
:mod:`harness.install.upgrade`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from harness.checks.shared import expect_none
from harness.guest_tree import Manifest, manifest_differences
from harness.install.again import Reinstall
from harness.install.upgrade import Upgrade


def without(manifest: Manifest, patterns: Sequence[str]) -> Manifest:
    return Manifest(tuple(e for e in manifest.entries if not any(fnmatch.fnmatchcase(e.path, p) for p in patterns)))


def reinstall_differences(fresh: Manifest, again: Manifest, ignore: Sequence[str]) -> list[str]:
    return manifest_differences(without(fresh, ignore), without(again, ignore),
                                names=("the fresh install", "the tree after reinstalling"))


def left_behind(upgraded: Manifest, old: Manifest, fresh: Manifest, leaves: Sequence[str]) -> list[str]:
    """Files of the older release still there after the upgrade that a fresh install does not have."""
    shipped = fresh.by_path()
    old_paths = old.by_path()
    return [f"{e.path} (from {'the older release' if e.path in old_paths else 'neither release'})"
            for e in upgraded.entries
            if e.path not in shipped and not any(fnmatch.fnmatchcase(e.path, p) for p in leaves)]


def judge_reinstall(fresh: Manifest, again: Reinstall, ignore: Sequence[str]) -> None:
    """Raises AssertionError when the reinstall failed, left another tree, or broke the server."""
    run = again.installer
    if not run.ok:
        raise AssertionError(f"installing over an existing install failed with exit {run.exit_code}:\n{run.tail()}")
    expect_none(reinstall_differences(fresh, again.manifest, ignore),
                "installing over an existing install leaves a different tree than a fresh install")
    if not again.server_ok:
        raise AssertionError(f"the server does not work after reinstalling: {again.served}")


def judge_upgrade(up: Upgrade, fresh: Manifest, leaves: Sequence[str]) -> None:
    """Raises AssertionError when either install failed or the upgrade left files behind."""
    if not up.first.ok:
        raise AssertionError(f"the previous release {up.previous.filename} did not install "
                             f"(exit {up.first.exit_code}), so the upgrade could not be tried:\n{up.first.tail()}")
    if not up.upgrade.ok:
        raise AssertionError(f"upgrading from {up.previous.filename} failed with exit {up.upgrade.exit_code}:\n"
                             f"{up.upgrade.tail()}")
    expect_none(left_behind(up.manifest, up.old_manifest, fresh, leaves),
                f"upgrading from {up.previous.filename} left files this release does not ship")
