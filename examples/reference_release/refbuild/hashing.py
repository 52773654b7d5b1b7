"""Content digests used as cache keys: a key changes exactly when an input's bytes change."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

IGNORED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}


def iter_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for path in sorted(root.rglob("*")):
        if any(part in IGNORED_NAMES for part in path.relative_to(root).parts):
            continue
        if path.is_file() and path.suffix not in IGNORED_SUFFIXES:
            found.append(path)
    return found


def digest_paths(paths: Iterable[Path], extra: Iterable[str] = ()) -> str:
    """sha256 over relative names and contents of every file under `paths`, plus `extra` strings."""
    h = hashlib.sha256()
    for root in paths:
        for path in iter_files(root):
            name = path.name if root.is_file() else path.relative_to(root).as_posix()
            h.update(f"{name}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    for item in extra:
        h.update(f"{item}\0".encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
