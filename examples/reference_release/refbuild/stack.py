"""The venvstacks stack: seed the runtime, lock/build/publish, cache the published layers by input."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from . import log
from .cache import cached_dir
from .config import TOOL_PINS, BuildPaths
from .elf import Patchelf
from .errors import BuildError
from .hashing import digest_paths, sha256_file
from .seed import PY_XY, PYTHON_VERSION, build_seed, seed_source
from .tools import patchelf_path, run

REFBUILD = Path(__file__).resolve().parent
SEED_DIR_NAME = f"cpython@{PYTHON_VERSION}"


@dataclass(frozen=True)
class PublishedStack:
    """`venvstacks publish` output: one .tar.xz per layer plus __venvstacks__/ metadata."""

    root: Path

    def archives(self) -> list[Path]:
        return sorted(self.root.glob("*.tar.xz"))

    def archive_for(self, layer: str) -> Path:
        found = [a for a in self.archives() if a.name.startswith(f"{layer}-")]
        if len(found) != 1:
            raise BuildError(f"expected one published archive for layer {layer}, found {[a.name for a in found]}")
        return found[0]

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def seed_key() -> str:
    source = seed_source()
    binaries = [source / "bin" / f"python{PY_XY}", source / "lib" / f"libpython{PY_XY}.so.1.0"]
    return digest_paths([REFBUILD / "seed.py", REFBUILD / "elf.py"],
                        extra=[str(source), *(sha256_file(b) for b in binaries), *TOOL_PINS])


def ensure_seed(paths: BuildPaths) -> Path:
    patchelf = Patchelf(patchelf_path(paths))
    cache = paths.cache("seed", seed_key())
    return cached_dir(cache, "runtime seed (relocatable CPython)", lambda tmp: build_seed(tmp / SEED_DIR_NAME, patchelf)) / SEED_DIR_NAME


def stack_key(paths: BuildPaths, seed: Path) -> str:
    return digest_paths([paths.spec, paths.root / "requirements", paths.server_sources],
                        extra=[seed.parent.name, *TOOL_PINS])


def build_stack(paths: BuildPaths, tools_python: Path, seed: Path, export: Path) -> None:
    workdir = paths.build / "venvstacks"
    workdir.mkdir(parents=True, exist_ok=True)
    # venvstacks moves the seed into the runtime layer's build env, so each build gets a fresh copy.
    seeded = workdir / SEED_DIR_NAME
    shutil.rmtree(seeded, ignore_errors=True)
    shutil.copytree(seed, seeded, symlinks=True)
    # `python -m venvstacks`, not the console script: 0.7.0 derives the venv python's name from
    # sys.executable's suffix, and the script's `python3.11` shebang yields `python.11`.
    # --clean: a stack is only rebuilt when its inputs changed, and then from scratch, so that a
    # cached stack and one from an empty build dir are the same bytes.
    run([str(tools_python), "-m", "venvstacks", "build", str(paths.spec),
         "--build-dir", str(workdir), "--output-dir", str(export),
         "--lock-if-needed", "--clean", "--publish", "--tag-outputs"],
        "venvstacks build", paths.build / "logs" / "venvstacks.log")


def ensure_stack(paths: BuildPaths, tools_python: Path) -> PublishedStack:
    seed = ensure_seed(paths)
    cache = paths.cache("stack", stack_key(paths, seed))
    root = cached_dir(cache, "venvstacks stack (lock, build, publish)",
                      lambda tmp: build_stack(paths, tools_python, seed, tmp / "export"))
    stack = PublishedStack(root / "export")
    log.info("layers: " + ", ".join(a.name for a in stack.archives()))
    return stack
