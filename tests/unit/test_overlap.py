"""The second VM's work in the background: its result or error reach the main thread, its first
install is available before the rest is done, its reserved slot is used or freed, and a cancel
removes what it made."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InfrastructureError
from harness.host.slots import Slot, SlotPool
from harness.journal import Journal, read_journal
from harness.suite.overlap import BackgroundTwin, JournalPhases
from harness.vm.provider import VMOptions

WAIT_S = 10.0


class FakeMachine:
    def __init__(self, slot: Slot | None) -> None:
        self.slot = slot
        self.closed: list[bool] = []

    def close(self, failed: bool = False, interrupted: bool = False) -> None:
        self.closed.append(interrupted)
        if self.slot is not None:
            self.slot.release()


class Maker:
    def __init__(self) -> None:
        self.made: list[FakeMachine] = []

    def __call__(self, image: str, options: VMOptions, slot: Slot | None) -> Any:
        machine = FakeMachine(slot)
        self.made.append(machine)
        return machine


def pool(tmp_path: Path, slots: int = 2) -> SlotPool:
    return SlotPool(tmp_path / "slots", slots)


def test_the_first_install_is_there_before_the_rest_and_the_result_after(tmp_path: Path) -> None:
    slots = pool(tmp_path)
    reserved = slots.try_acquire()
    assert reserved is not None
    installed, go_on = object(), threading.Event()
    maker = Maker()

    def work(make: Any, timer: JournalPhases, on_installed: Any) -> Any:
        machine = make("img", VMOptions())
        with timer.phase("twin_install", target="t"):
            on_installed(installed)
        assert go_on.wait(WAIT_S)
        machine.close()
        return "whole twin"

    twin = BackgroundTwin.start("t", reserved, maker, Journal(tmp_path / "results"), work)
    assert twin.installed() is installed
    assert twin.running, "the twin went on after its first install"
    go_on.set()
    assert twin.result() == "whole twin"
    assert maker.made[0].slot is reserved, "the twin's VM ran in the slot reserved for it"
    assert slots.try_acquire() is not None and slots.try_acquire() is not None, "both slots are free again"
    phases = [r for r in read_journal(tmp_path / "results") if r["kind"] == "phase"]
    assert [(p["phase"], p["target"], p["ok"]) for p in phases] == [("twin_install", "t", True)]


def test_an_error_in_the_twin_is_raised_where_its_result_is_asked_for(tmp_path: Path) -> None:
    slots = pool(tmp_path)
    reserved = slots.try_acquire()
    assert reserved is not None

    def work(make: Any, timer: JournalPhases, on_installed: Any) -> Any:
        raise InfrastructureError("the second VM did not boot")

    twin = BackgroundTwin.start("t", reserved, Maker(), Journal(tmp_path / "results"), work)
    with pytest.raises(InfrastructureError, match="did not boot"):
        twin.installed()
    with pytest.raises(InfrastructureError, match="did not boot"):
        twin.result()
    assert reserved.held is False, "a slot the twin never used is freed"


def test_cancel_removes_the_twins_vm_and_no_new_one_starts(tmp_path: Path) -> None:
    slots = pool(tmp_path)
    reserved = slots.try_acquire()
    assert reserved is not None
    maker = Maker()
    booted, closed_from_outside = threading.Event(), threading.Event()

    def work(make: Any, timer: JournalPhases, on_installed: Any) -> Any:
        machine = make("img", VMOptions())
        booted.set()
        while not machine.closed:  # the install a closed VM ends
            closed_from_outside.wait(0.01)
        make("img", VMOptions())  # a second VM after the cancel must not start
        return "never"

    twin = BackgroundTwin.start("t", reserved, maker, Journal(tmp_path / "results"), work)
    assert booted.wait(WAIT_S)
    twin.cancel()
    assert not twin.running
    assert maker.made[0].closed == [True], "the twin's VM was closed as interrupted"
    assert len(maker.made) == 1
    with pytest.raises(InfrastructureError, match="cancelled"):
        twin.result()


def test_a_failed_phase_is_journaled_as_failed(tmp_path: Path) -> None:
    timer = JournalPhases(Journal(tmp_path))
    with pytest.raises(RuntimeError), timer.phase("twin_boot", target="t"):
        raise RuntimeError("boom")
    (record,) = [r for r in read_journal(tmp_path) if r["kind"] == "phase"]
    assert record["phase"] == "twin_boot" and record["ok"] is False and record["duration_s"] >= 0
