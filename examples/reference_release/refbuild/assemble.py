"""The good release: launcher, release.env, server sources with its layers, modelfiles; install.sh beside it."""

from __future__ import annotations

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
