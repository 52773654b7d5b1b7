"""The good release: launcher, release.env, server sources with its layers, modelfiles; install.sh beside it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .config import BuildPaths, ReleaseIdentity
from .stack import PublishedStack
from .tree import Member, ReleaseTree, add_directory

STACK_DIR = "server/stack_export_prod"
RUNTIME_LAYER = "cpython3.11"
APP_LAYER = "app-server"


def release_env(identity: ReleaseIdentity) -> str:
    """KEY=VALUE facts read by install.sh (with sed: no Python on the target) and by the harness."""
    fields = {
        "NAME": identity.name,
        "VERSION": identity.version,
        "ARCH": identity.arch,
        "OS": identity.os,
        "PLATFORM": identity.platform,
        "RUNTIME_LAYER": RUNTIME_LAYER,
        "APP_LAYER": APP_LAYER,
        "LAUNCH_MODULE": "server.main",
        "DEFAULT_PORT": "6969",
    }
    return "".join(f"{key}={value}\n" for key, value in fields.items())


def good_release(paths: BuildPaths, identity: ReleaseIdentity, stack: PublishedStack, modelfiles: Path) -> ReleaseTree:
    members: dict[str, Member] = {}
    launcher = (paths.release_files / identity.name).read_text(encoding="utf-8")
    members[identity.name] = Member(launcher.replace("@REFAPP_VERSION@", identity.version).encode(), 0o755)
    members["release.env"] = Member(release_env(identity).encode())
    add_directory(members, paths.server_sources, "server")
    add_directory(members, stack.root, STACK_DIR)
    add_directory(members, modelfiles, "modelfiles")
    installer = (paths.release_files / "install.sh").read_text(encoding="utf-8")
    return ReleaseTree(members=members, installer=installer)


PREVIOUS_VERSION = "0.0.9"
# A module the previous release shipped and this one dropped: an upgrade must not keep it.
DROPPED_MODULE = "server/legacy_prompts.py"


def previous_release(paths: BuildPaths, identity: ReleaseIdentity, stack: PublishedStack,
                     modelfiles: Path) -> tuple[ReleaseTree, ReleaseIdentity]:
    """The release before this one, for the upgrade check: same layers, older version, one more file."""
    older = replace(identity, version=PREVIOUS_VERSION)
    tree = good_release(paths, older, stack, modelfiles)
    legacy = b'"""Prompt templates of refapp 0.0.x (dropped in 0.1.0)."""\nTEMPLATES = {}\n'
    return tree.with_member(DROPPED_MODULE, Member(legacy)), older
