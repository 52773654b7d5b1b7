"""ELF plumbing for the runtime seed: read NEEDED entries, set RUNPATH, find host libraries."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError

ELF_MAGIC = b"\x7fELF"

# What a Debian 12 minbase system is guaranteed to provide: glibc itself and the GCC runtime
# (libgcc-s1 is Priority: required and libstdc++6 is pulled in by apt). Everything else the
# release needs, it ships.
BASE_SYSTEM_SONAMES = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "ld-linux-x86-64.so.2", "libgcc_s.so.1", "libstdc++.so.6",
})


def is_elf(path: Path) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as handle:
        return handle.read(4) == ELF_MAGIC


@dataclass(frozen=True)
class Patchelf:
    executable: Path

    def _run(self, *args: str) -> str:
        result = subprocess.run([str(self.executable), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(f"patchelf {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def needed(self, path: Path) -> list[str]:
        return self._run("--print-needed", str(path)).split()

    def set_rpath(self, path: Path, rpath: str) -> None:
        self._run("--set-rpath", rpath, str(path))

    def remove_rpath(self, path: Path) -> None:
        self._run("--remove-rpath", str(path))

    def add_needed(self, path: Path, soname: str) -> None:
        self._run("--add-needed", soname, str(path))


def host_library_map() -> dict[str, Path]:
    """soname -> path of the host's x86-64 shared libraries, from `ldconfig -p`."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"cannot list host libraries with ldconfig -p: {exc}",
                         "run the build on a glibc Linux host (Debian 12 is the reference)") from exc
    found: dict[str, Path] = {}
    for line in listing.splitlines()[1:]:
        name, _, rest = line.strip().partition(" (")
        flags, _, target = rest.partition(") => ")
        if "x86-64" in flags and name not in found:
            found[name] = Path(target)
    return found
