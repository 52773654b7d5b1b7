"""The one polling loop: attempts until the deadline, pauses that never run past it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from harness import waiting
from harness.waiting import attempts


@dataclass
class FakeClock:
    """Stands in for the ``time`` module inside harness.waiting: sleeping moves the clock."""

    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(waiting, "time", fake)
    return fake


def test_attempts_run_until_the_deadline_and_the_last_pause_ends_at_it(clock: FakeClock) -> None:
    numbers = [attempt.number for attempt in attempts(1.0, 0.375)]
    assert numbers == [1, 2, 3]
    assert clock.slept == [0.375, 0.375, 0.25]
    assert clock.now == pytest.approx(101.0)


def test_the_first_attempt_runs_even_when_no_time_is_left(clock: FakeClock) -> None:
    seen = [(attempt.number, attempt.remaining_s()) for attempt in attempts(0.0, 5.0)]
    assert seen == [(1, 0.0)] and clock.slept == []


def test_a_slow_attempt_uses_up_the_time_and_no_pause_follows(clock: FakeClock) -> None:
    for attempt in attempts(2.0, 0.5):
        assert attempt.number == 1
        clock.now += 3.0  # the probe itself outlasted the deadline
    assert clock.slept == []


def test_breaking_out_stops_at_once(clock: FakeClock) -> None:
    for attempt in attempts(10.0, 1.0):
        if attempt.number == 2:
            break
    assert clock.slept == [1.0]


def test_a_back_off_gets_each_attempt_number(clock: FakeClock) -> None:
    list(attempts(4.0, lambda number: min(0.5 * number, 1.5)))
    assert clock.slept == [0.5, 1.0, 1.5, 1.0]


def test_since_counts_the_timeout_from_an_earlier_start(clock: FakeClock) -> None:
    started = clock.now
    clock.now += 0.75  # what came before the loop (starting the server, say) took most of it
    assert len(list(attempts(1.0, 0.125, since=started))) == 2
    assert clock.now == pytest.approx(started + 1.0)


def test_remaining_and_pause_stop_at_the_deadline(clock: FakeClock) -> None:
    attempt = next(attempts(1.0, 0.0))
    assert attempt.remaining_s() == pytest.approx(1.0)
    attempt.pause(2.0)
    assert clock.slept == [1.0] and attempt.remaining_s() == 0.0
    attempt.pause(2.0)
    assert clock.slept == [1.0, 0.0]
