"""Where the reference release lives in a checkout, and how to build it when it is missing.

The reference release (``examples/reference_release``) is the suite's default subject: ``pytest
tests/`` and a bare ``harness run`` test it when no ``--release`` is given.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

from harness.errors import UsageError

RELEASE_DIR = Path("examples") / "reference_release"
PRODUCT = "refapp"


def checkout_root() -> Path:
    """The repository the harness package was installed from (editable installs)."""
    return Path(__file__).resolve().parents[2]


def release_dir(root: Path | None = None) -> Path:
    return (root or checkout_root()) / RELEASE_DIR


def dist_dir(root: Path | None = None) -> Path:
    return release_dir(root) / "dist"


def _host_arch() -> str:
    machine = platform.machine()
    return {"aarch64": "arm64", "amd64": "x86_64"}.get(machine, machine)


def default_release(root: Path | None = None) -> Path | None:
    """The built reference tarball for this host's platform, or None when it is not built."""
    for base in dict.fromkeys([root, checkout_root()]):
        if base is None:
            continue
        found = sorted(dist_dir(base).glob(f"{PRODUCT}-v*-{_host_arch()}-linux.tar.gz"))
        if found:
            return found[-1]
    return None


def variant_release(name: str, root: Path | None = None) -> Path | None:
    found = sorted((dist_dir(root) / "variants" / name).glob(f"{PRODUCT}-v*.tar.gz"))
    return found[-1] if found else None


def build_reference(variants: list[str] | None = None, all_variants: bool = False,
                    root: Path | None = None, timeout_s: float = 3600.0) -> None:
    """Run the release's own build script (it caches: a current build returns quickly)."""
    script = release_dir(root) / "build.py"
    if not script.is_file():
        raise UsageError(
            f"the reference release's build script {script} is missing",
            hint="run from a checkout of the harness repository, or pass --release PATH",
        )
    argv = [sys.executable, str(script)]
    if all_variants:
        argv.append("--all-variants")
    for name in variants or []:
        argv += ["--variant", name]
    result = subprocess.run(argv, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise UsageError(
            f"building the reference release failed (exit {result.returncode})",
            hint=f"run `{' '.join(argv)}` and read its output",
        )
