"""Host programs the QEMU provider and the image builder run, and the Debian package of each.

A missing program is an error that names the ``apt-get install`` line that fixes it, never a
bare ``FileNotFoundError`` from deep inside a subprocess call.
"""

from __future__ import annotations

import shutil

from harness.errors import MissingToolError

# program -> Debian package that ships it
APT_PACKAGES: dict[str, str] = {
    "debootstrap": "debootstrap",
    "chroot": "coreutils",
    "mkfs.ext4": "e2fsprogs",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
}


def require_tool(program: str, purpose: str) -> str:
    """Absolute path of ``program``; ``MissingToolError`` naming its package when absent."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found:
        return found
    package = APT_PACKAGES.get(program, program)
    raise MissingToolError(
        f"'{program}' is not installed; it is needed to {purpose}",
        hint=f"install it: sudo apt-get install -y {package}",
    )
