"""Signals versus cleanup: SIGTERM becomes KeyboardInterrupt (so ``finally`` blocks run, as they do
for Ctrl-C), and a cleanup in progress is not cut short by a second Ctrl-C or SIGTERM.

Python may only install signal handlers in the main thread; elsewhere both helpers do nothing.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Self

_GUARD_ATTR = "_harness_sigterm_guard"
_DEFER_ATTR = "_harness_deferring"


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# A supervisor often repeats SIGTERM at once (to the whole group, or in a retry loop); repeats
# that soon must not cut short the cleanup the first one began. One arriving later means the first
# interrupt was swallowed somewhere, or the cleanup is stuck: that one has to stop the run again.
REPEAT_GRACE_S = 10.0


class SigtermAsInterrupt:
    """While installed, a SIGTERM raises KeyboardInterrupt in the main thread; repeats within
    ``repeat_grace_s`` of the last one that did are ignored so that the cleanup it triggered can
    finish. Installing inside an already guarded region is a no-op; ``restore`` puts the previous
    handler back."""

    def __init__(self, repeat_grace_s: float = REPEAT_GRACE_S) -> None:
        self._previous: Any = None
        self._installed = False
        self._repeat_grace_s = repeat_grace_s
        self._fired_at: float | None = None

    def install(self) -> Self:
        if not _in_main_thread() or self._installed:
            return self
        current = signal.getsignal(signal.SIGTERM)
        if getattr(current, _GUARD_ATTR, False):
            return self  # an outer guard already converts SIGTERM
        self._previous = current
        handler = self._handle
        signal.signal(signal.SIGTERM, handler)
        self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._fired_at is not None and now - self._fired_at < self._repeat_grace_s:
            return
        self._fired_at = now
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    def restore(self) -> None:
        if self._installed and _in_main_thread():
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()


setattr(SigtermAsInterrupt._handle, _GUARD_ATTR, True)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block to its end even if SIGINT/SIGTERM arrive; raise KeyboardInterrupt afterwards.

    Nested uses defer to the outermost one, so a loop of cleanups is never cut in the middle.
    """
    if not _in_main_thread() or getattr(signal.getsignal(signal.SIGINT), _DEFER_ATTR, False):
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    setattr(remember, _DEFER_ATTR, True)
    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt(f"signal {signal.Signals(received[0]).name} during cleanup")
