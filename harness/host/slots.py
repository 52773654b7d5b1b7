"""The per-host cap on running VMs, shared by xdist workers and separate pytest processes.

Slot ``i`` is the file ``<state>/slots/slot-<i>.lock`` held with ``flock``: the kernel drops the
lock when its holder exits, however it exits, so a crashed worker never keeps a slot. ``flock``
(not ``fcntl.lockf``) because POSIX record locks vanish when the process closes *any* descriptor of
the file, which reading a holder's pid would do. The holder writes its pid into the file so that a
timeout can say who is in the way.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from harness.errors import InfrastructureError, UsageError
from harness.waiting import attempts

ForeignCounter = Callable[[], int]
"""Counts running VMs the harness did not start (e.g. a developer's own tart VM): they take slots."""


@dataclass(frozen=True)
class SlotHolder:
    index: int
    pid: int | None
    label: str
    since: float | None


class Slot:
    """A held slot; ``release()`` (or leaving the ``with`` block) frees it. Releasing twice is fine."""

    def __init__(self, index: int, path: Path, fd: int) -> None:
        self.index = index
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Slot({self.index}, held={self.held})"


class SlotPool:
    """At most ``max_slots`` VMs at once on this host, minus those ``foreign_running`` reports."""

    def __init__(
        self,
        directory: Path,
        max_slots: int,
        foreign_running: ForeignCounter | None = None,
        poll_s: float = 0.25,
    ) -> None:
        if max_slots < 1:
            raise UsageError(f"--max-vms must be at least 1, got {max_slots}")
        self.directory = directory
        self.max_slots = max_slots
        self.foreign_running = foreign_running
        self.poll_s = poll_s

    def _path(self, index: int) -> Path:
        return self.directory / f"slot-{index}.lock"

    def _allowed(self) -> int:
        foreign = self.foreign_running() if self.foreign_running else 0
        return max(self.max_slots - foreign, 0)

    def try_acquire(self, label: str = "") -> Slot | None:
        """A free slot now, or None."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for index in range(self._allowed()):
            path = self._path(index)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            record = {"pid": os.getpid(), "label": label, "since": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            return Slot(index, path, fd)
        return None

    def acquire(self, timeout_s: float, label: str = "") -> Slot:
        """Block until a slot is free; after ``timeout_s`` raise naming who holds them."""
        for _ in attempts(timeout_s, self.poll_s):
            slot = self.try_acquire(label)
            if slot is not None:
                return slot
        raise self._busy_error(timeout_s)

    def holders(self) -> list[SlotHolder]:
        """Who holds which slot right now (read without disturbing the holders)."""
        busy: list[SlotHolder] = []
        for index in range(self.max_slots):
            path = self._path(index)
            if not path.exists():
                continue
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    continue  # we could lock it: nobody holds it
                except BlockingIOError:
                    pass
                busy.append(_parse_holder(index, os.pread(fd, 4096, 0)))
            finally:
                os.close(fd)
        return busy

    def _busy_error(self, waited_s: float) -> InfrastructureError:
        holders = self.holders()
        pids = ", ".join(
            f"{h.pid or '?'}" + (f" ({h.label})" if h.label else "") for h in holders
        ) or "none recorded"
        foreign = self.foreign_running() if self.foreign_running else 0
        extra = f"; {foreign} VM(s) not started by the harness also count" if foreign else ""
        return InfrastructureError(
            f"all {self.max_slots} VM slots busy for {waited_s:g} s; held by pids {pids}{extra}",
            hint="wait for the other run to finish, stop it, or raise --max-vms if this host has "
            f"the cores and memory (locks live in {self.directory})",
        )


def _parse_holder(index: int, raw: bytes) -> SlotHolder:
    try:
        record = json.loads(raw.decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        record = {}
    return SlotHolder(
        index=index,
        pid=record.get("pid"),
        label=str(record.get("label", "")),
        since=record.get("since"),
    )
