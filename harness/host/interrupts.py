"""Signals versus cleanup: SIGTERM becomes KeyboardInterrupt (so ``finally`` blocks run, as they do
for Ctrl-C), and a cleanup in progress is not cut short by a second Ctrl-C or SIGTERM.

Python may only install signal handlers in the main thread; elsewhere both helpers do nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Self

_GUARD_ATTR = "_harness_sigterm_guard"
_DEFER_ATTR = "_harness_deferring"


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class SigtermAsInterrupt:
    """While installed, the first SIGTERM raises KeyboardInterrupt in the main thread; later ones
    are ignored so that the cleanup the first one triggered can finish. Installing inside an
    already guarded region is a no-op; ``restore`` puts the previous handler back."""

    def __init__(self) -> None:
        self._previous: Any = None
        self._installed = False
        self._fired = False

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
        if self._fired:
            return
        self._fired = True
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
