"""Whether a results directory can take a run: writable, and with room for one run's evidence
(allure results, logs, packet captures; tens of MB for the reference release). Checked before any
VM boots, so a read-only or full disk is one clear sentence instead of a traceback mid-run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.errors import UsageError

MIN_FREE_BYTES = 200 * 1024 * 1024


def nearest_existing(root: Path) -> Path:
    """``root``, or the nearest directory above it that exists (a run makes the rest)."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_results_dir(root: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """UsageError naming the problem when ``root`` cannot hold a run's results. Nothing is left
    behind: a missing ``root`` is judged by the nearest directory that exists (the run makes it)."""
    hint = "pass --results-dir DIR on a writable file system with free space"
    existing = nearest_existing(root)
    probe = existing / f".write-probe-{os.getpid()}"
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a directory")
        probe.write_bytes(b"probe")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"the results directory {root} cannot be written: {exc.strerror or exc}",
                         hint=hint) from None
    free = shutil.disk_usage(existing).free
    if free < min_free:
        raise UsageError(
            f"the results directory {root} has {free // 2**20} MiB free; a run needs at least "
            f"{min_free // 2**20} MiB", hint=hint)
