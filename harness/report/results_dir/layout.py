"""Where a run's results live inside the results directory, and how a new run claims it.

One results directory holds one run. ``history/`` is the exception: it survives the cleaning so
that trends (``harness report``) and allure's history graphs can compare against earlier runs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.errors import UsageError

LOCK_NAME = ".harness.lock"
KEEP_ON_CLEAN = frozenset({"history", LOCK_NAME})


@dataclass(frozen=True)
class ResultsLayout:
    root: Path

    @property
    def allure_results(self) -> Path:
        return self.root / "allure-results"

    @property
    def allure_report(self) -> Path:
        return self.root / "allure-report"

    @property
    def junit(self) -> Path:
        return self.root / "junit.xml"

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    @property
    def screenshots(self) -> Path:
        return self.root / "screenshots"

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def signoff_html(self) -> Path:
        return self.root / "signoff.html"

    @property
    def signoff_md(self) -> Path:
        return self.root / "signoff.md"

    @property
    def signoff_json(self) -> Path:
        return self.root / "signoff.json"

    @property
    def trends_json(self) -> Path:
        return self.root / "trends.json"

    def relative(self, path: Path) -> str:
        """``path`` as the sign-off links it: relative to the results directory, '/'-separated."""
        return Path(os.path.relpath(path.absolute(), self.root.absolute())).as_posix()


class ResultsLock:
    """An exclusive claim on a results directory for the length of one run (controller only).

    Two runs writing into one directory would wipe or mix each other's results, so the second
    one stops with a clear message instead. The fcntl lock dies with its process, so a crashed
    run never leaves the directory blocked.
    """

    def __init__(self, layout: ResultsLayout) -> None:
        self._layout = layout
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self._layout.root.mkdir(parents=True, exist_ok=True)
        path = self._layout.root / LOCK_NAME
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UsageError(
                f"results directory {self._layout.root} is in use by another run (pid {holder})",
                hint="wait for that run to finish, or pass --results-dir DIR to write elsewhere",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def clean_for_new_run(layout: ResultsLayout) -> list[Path]:
    """Empty the results directory except ``history/`` (and the lock); returns what was removed."""
    layout.root.mkdir(parents=True, exist_ok=True)
    removed: list[Path] = []
    for entry in sorted(layout.root.iterdir()):
        if entry.name in KEEP_ON_CLEAN:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry)
    return removed
