"""Directory caches keyed by content digests: build once into a temp dir, rename when complete."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from . import log

DONE_MARKER = ".complete"


def cached_dir(path: Path, what: str, produce: Callable[[Path], None]) -> Path:
    """Return `path`, producing it with `produce(tmp_dir)` unless a complete copy exists."""
    if (path / DONE_MARKER).exists():
        log.info(f"{what}: cached ({path})")
        return path
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    tmp.mkdir(parents=True)
    with log.step(what):
        produce(tmp)
    (tmp / DONE_MARKER).write_text("")
    tmp.rename(path)
    return path
