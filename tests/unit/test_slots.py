"""The per-host VM slot cap, exercised by real concurrent processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.errors import InfrastructureError, UsageError
from harness.host.slots import SlotPool

# A worker process: take a slot, note when it held it, hold it a while, let go.
WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from harness.host.slots import SlotPool
    directory, max_slots, hold_s, out = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    with SlotPool(directory, max_slots, poll_s=0.05).acquire(timeout_s=60, label="worker") as slot:
        start = time.time()
        time.sleep(hold_s)
        end = time.time()
    Path(out).write_text(json.dumps({"slot": slot.index, "start": start, "end": end}))
    """
)


def _spawn(directory: Path, max_slots: int, hold_s: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(directory), str(max_slots), str(hold_s), str(out)]
    )


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize("max_slots,workers", [(1, 3), (2, 4)])
def test_separate_processes_never_exceed_the_cap(
    tmp_path: Path, max_slots: int, workers: int
) -> None:
    procs = [_spawn(tmp_path / "slots", max_slots, 1.2, tmp_path / f"w{i}.json")
             for i in range(workers)]
    assert [p.wait(timeout=60) for p in procs] == [0] * workers
    records = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(workers)]
    assert _max_overlap([(r["start"], r["end"]) for r in records]) == max_slots
    assert {r["slot"] for r in records} == set(range(max_slots))


def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    holder = _spawn(tmp_path / "slots", 1, 600, tmp_path / "never.json")
    pool = SlotPool(tmp_path / "slots", 1, poll_s=0.05)
    deadline = time.monotonic() + 30
    while not pool.holders() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [h.pid for h in pool.holders()] == [holder.pid]
    assert pool.try_acquire() is None

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    with pool.acquire(timeout_s=5) as slot:
        assert slot.index == 0 and pool.holders()[0].pid == os.getpid()


def test_timeout_names_the_holders(tmp_path: Path) -> None:
    pool = SlotPool(tmp_path, 2, poll_s=0.05)
    first, second = pool.acquire(1, label="vm-a"), pool.acquire(1, label="vm-b")
    started = time.monotonic()
    with pytest.raises(InfrastructureError) as caught:
        pool.acquire(timeout_s=0.5)
    assert 0.5 <= time.monotonic() - started < 3
    message = str(caught.value)
    assert "all 2 VM slots busy for 0.5 s" in message
    assert f"{os.getpid()} (vm-a)" in message and f"{os.getpid()} (vm-b)" in message
    first.release()
    second.release()
    second.release()  # twice is harmless
    assert pool.holders() == []


def test_reading_holders_does_not_release_our_own_lock(tmp_path: Path) -> None:
    pool = SlotPool(tmp_path, 1)
    with pool.acquire(1):
        for _ in range(3):
            assert len(pool.holders()) == 1
        # a different open file description still sees the slot as taken
        assert SlotPool(tmp_path, 1).try_acquire() is None


def test_foreign_vms_take_slots(tmp_path: Path) -> None:
    foreign = [1]
    pool = SlotPool(tmp_path, 2, foreign_running=lambda: foreign[0], poll_s=0.05)
    with pool.acquire(1):
        with pytest.raises(InfrastructureError, match="1 VM\\(s\\) not started by the harness"):
            pool.acquire(0.3)
        foreign[0] = 0
        with pool.acquire(1) as slot:
            assert slot.index == 1


def test_a_cap_below_one_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--max-vms must be at least 1"):
        SlotPool(tmp_path, 0)
