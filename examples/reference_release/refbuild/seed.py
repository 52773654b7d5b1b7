"""The offline runtime seed: a relocatable CPython 3.11.7 that runs on a minbase Debian 12.

venvstacks 0.7.0 would download python-build-standalone from GitHub; it skips the download when
`<build_dir>/cpython@3.11.7/bin/python3` exists. We build that tree from a local CPython 3.11.7
(pyenv's by default), and make it self-contained: every shared library its interpreter and
extension modules need, beyond glibc and the GCC runtime, is copied into its lib/ and found
through $ORIGIN-relative RUNPATHs. Extension modules that would drag in a GUI or terminal stack
(_tkinter, curses, readline) or a dead protocol (nis) are left out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .elf import BASE_SYSTEM_SONAMES, Patchelf, host_library_map, is_elf
from .errors import BuildError

PYTHON_VERSION = "3.11.7"
PY_XY = "3.11"
DEFAULT_SOURCE = Path("/root/.pyenv/versions") / PYTHON_VERSION
SOURCE_ENV = "REFAPP_SEED_PYTHON"

STDLIB_DROPPED_DIRS = frozenset({"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "__pycache__"})
STDLIB_DROPPED_FILES = frozenset({"turtle.py", "libpython3.11.a", "python.o"})
SEED_MTIME = 1704067200  # 2024-01-01T00:00:00Z: older than any lock time
EXTENSIONS_DROPPED = ("_tkinter", "nis", "_curses", "_curses_panel", "readline")


@dataclass(frozen=True)
class Seed:
    root: Path
    bundled_libraries: tuple[str, ...]
    dropped_extensions: tuple[str, ...]


def seed_source() -> Path:
    source = Path(os.environ.get(SOURCE_ENV, DEFAULT_SOURCE))
    python = source / "bin" / f"python{PY_XY}"
    if not python.is_file():
        raise BuildError(
            f"no CPython {PYTHON_VERSION} found at {source}",
            f"install one (e.g. `pyenv install {PYTHON_VERSION}`) or set {SOURCE_ENV} to its prefix",
        )
    version = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=False).stdout.strip()
    if version != PYTHON_VERSION:
        raise BuildError(f"{python} is Python {version or '?'}, the stack declares cpython@{PYTHON_VERSION}",
                         f"point {SOURCE_ENV} at a CPython {PYTHON_VERSION} prefix")
    return source


def _ignore_stdlib(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n in STDLIB_DROPPED_DIRS or n in STDLIB_DROPPED_FILES or n.endswith(".pyc")}
    if Path(directory).name == "site-packages":
        ignored |= {n for n in names if n != "README.txt"}
    if Path(directory).name == "lib-dynload":
        ignored |= {n for n in names if n.split(".")[0] in EXTENSIONS_DROPPED}
    return ignored


def copy_interpreter(source: Path, dest: Path) -> None:
    (dest / "bin").mkdir(parents=True)
    shutil.copyfile(source / "bin" / f"python{PY_XY}", dest / "bin" / f"python{PY_XY}")
    os.chmod(dest / "bin" / f"python{PY_XY}", 0o755)
    for alias in ("python3", "python"):
        (dest / "bin" / alias).symlink_to(f"python{PY_XY}")
    lib = dest / "lib"
    lib.mkdir()
    shutil.copyfile(source / "lib" / f"libpython{PY_XY}.so.1.0", lib / f"libpython{PY_XY}.so.1.0")
    shutil.copytree(source / "lib" / f"python{PY_XY}", lib / f"python{PY_XY}", ignore=_ignore_stdlib,
                    copy_function=shutil.copyfile)


def bundle_libraries(dest: Path, patchelf: Patchelf) -> list[str]:
    """Copy the closure of non-base NEEDED libraries into dest/lib; return their sonames."""
    lib = dest / "lib"
    host = host_library_map()
    pending = [p for p in sorted(dest.rglob("*")) if is_elf(p)]
    bundled: list[str] = []
    while pending:
        for soname in patchelf.needed(pending.pop()):
            if soname in BASE_SYSTEM_SONAMES or (lib / soname).exists():
                continue
            if soname not in host:
                raise BuildError(f"the seed needs {soname}, which this host does not have",
                                 "install the Debian package that provides it, or drop the module needing it")
            shutil.copyfile(host[soname], lib / soname)
            os.chmod(lib / soname, 0o644)
            bundled.append(soname)
            pending.append(lib / soname)
    return sorted(bundled)


def strip_debug_info(dest: Path) -> None:
    # pyenv builds keep DWARF data (libpython alone is 23 MB); the release has no use for it.
    strip = shutil.which("strip")
    if strip is None:
        return
    for path in sorted(dest.rglob("*")):
        if is_elf(path):
            subprocess.run([strip, "--strip-debug", str(path)], check=True)


def set_runpaths(dest: Path, patchelf: Patchelf) -> None:
    lib = dest / "lib"
    for path in sorted(dest.rglob("*")):
        if not is_elf(path):
            continue
        rel = os.path.relpath(lib, path.parent)
        patchelf.set_rpath(path, "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}")


def normalise_mtimes(root: Path, mtime: int) -> None:
    # venvstacks clamps archive mtimes to the lock time but keeps older ones: without this, a seed
    # made before the lock and one made after it give different runtime archives.
    for path in [*sorted(root.rglob("*"), reverse=True), root]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def build_seed(dest: Path, patchelf: Patchelf) -> Seed:
    source = seed_source()
    if dest.exists():
        shutil.rmtree(dest)
    copy_interpreter(source, dest)
    (dest / "lib" / f"python{PY_XY}" / "site-packages").mkdir(exist_ok=True)
    bundled = bundle_libraries(dest, patchelf)
    strip_debug_info(dest)
    set_runpaths(dest, patchelf)
    check = subprocess.run([str(dest / "bin" / "python3"), "-I", "-B", "-c",
                            "import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, json, decimal"],
                           capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    if check.returncode != 0:
        raise BuildError(f"the seeded interpreter at {dest} does not start: {check.stderr.strip()}")
    normalise_mtimes(dest, SEED_MTIME)
    return Seed(dest, tuple(bundled), EXTENSIONS_DROPPED)
