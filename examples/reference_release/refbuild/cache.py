"""Directory caches keyed by content digests: build once into a temp dir, rename when complete."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import log

DONE_MARKER = ".complete"


def cached_dir(path: Path, what: str, produce: Callable[[Path], object]) -> Path:
    """Return `path`, producing it with `produce(tmp_dir)` unless a complete copy exists."""
    if (path / DONE_MARKER).exists():
        log.info(f"{what}: cached ({path})")
        return path
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    tmp.mkdir(parents=True)
    with log.step(what):
        produce(tmp)
    (tmp / DONE_MARKER).write_text("")
    tmp.rename(path)
    return path


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """One build at a time per build dir (the venvstacks work dir and the outputs are shared)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"another build holds {lock_file}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def prune_siblings(kept: Path) -> None:
    """Drop the other cache entries of the same step (older inputs), keeping the one in use."""
    for sibling in kept.parent.iterdir():
        if sibling != kept and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)
