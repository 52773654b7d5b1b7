"""Waiting for something with a deadline: one loop shape for every poll in the harness.

``for attempt in attempts(timeout_s, interval_s):`` runs its body until the body returns (or
raises), pausing ``interval_s`` between tries and never past the deadline; when the loop ends on
its own, time ran out and the code after it raises that caller's own error. The first attempt
always runs, and ``attempt.remaining_s()`` gives what is left for a step that takes a timeout.

Our own because the call sites read better than with tenacity: each loop ends in its own error
(a boot timeout with the console tail, the last probe's answer, a slot's holders) and stops early
on its own conditions (QEMU died, the server crashed), which tenacity would take as a
``Retrying`` of stop, wait and retry objects plus a ``retry_error_callback`` per call site and
state carried out of the callback; and its stops do not end at the deadline
(``stop_after_delay`` sleeps up to one interval past it, ``stop_before_delay`` gives up up to one
interval before it), where these loops sleep no further than the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Attempt:
    number: int  # 1 for the first
    deadline: float  # time.monotonic() when the wait gives up

    def remaining_s(self) -> float:
        """Seconds left before the deadline, never negative."""
        return max(self.deadline - time.monotonic(), 0.0)

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` but not past the deadline: for a loop whose pause depends on what
        the attempt saw (its ``attempts`` interval is then 0)."""
        time.sleep(min(seconds, self.remaining_s()))


def attempts(timeout_s: float, interval_s: float | Callable[[int], float], *,
             since: float | None = None) -> Iterator[Attempt]:
    """Attempts until ``timeout_s`` has passed since ``since`` (a ``time.monotonic()``, by default
    now), ``interval_s`` apart (or ``interval_s(n)`` after attempt ``n``, for a back-off); the
    pause before the deadline is cut short to end at it."""
    deadline = (time.monotonic() if since is None else since) + timeout_s
    number = 1
    while True:
        yield Attempt(number, deadline)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        pause = interval_s(number) if callable(interval_s) else interval_s
        time.sleep(min(pause, remaining))
        if time.monotonic() >= deadline:
            return
        number += 1
