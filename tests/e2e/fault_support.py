"""Shared by the fault suite: a real ``harness run`` in a child process, where it is in its
pipeline (read from its run journal), fault injection by signal, and the "nothing left behind"
audit (VM directories with their overlays, hypervisors, watchdogs, leases, slot locks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from harness.config import HostPaths
from harness.errors import HarnessError
from harness.host.run_label import LeaseBook, VMName
from harness.host.slots import SlotPool
from harness.ssh import SSHTransport
from harness.vm.qemu.provider import QemuProvider

PATHS = HostPaths.from_env()
HARNESS = [sys.executable, "-m", "harness.cli"]
START_TIMEOUT_S = 1800.0  # the slot cap is shared with every other run on this host


def new_run_id() -> str:
    return "flt" + uuid.uuid4().hex[:7]


def wait_until(predicate: object, timeout_s: float, what: str, poll_s: float = 0.1) -> float:
    """Seconds it took; fails the test after ``timeout_s``."""
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - started


def processes_naming(text: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if text in " ".join(process.info["cmdline"] or []) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def run_vm_dirs(run_id: str) -> list[Path]:
    if not PATHS.vms.is_dir():
        return []
    return [d for d in PATHS.vms.iterdir() if (n := VMName.parse(d.name)) and n.run_id == run_id]


def hypervisors_of(run_id: str) -> list[psutil.Process]:
    """QEMU processes of this run's VMs (their command line names the VM directory)."""
    return [p for p in processes_naming(f"/hns-{run_id}-") if "qemu" in p.name()]


@dataclass
class HarnessRun:
    """``harness run`` on the reference release, as a user starts it, in a child process."""

    run_id: str
    workdir: Path
    process: subprocess.Popen[str]
    results: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, tmp: Path, *args: str, pytest_args: tuple[str, ...] = (),
              env: dict[str, str] | None = None, results: Path | None = None) -> HarnessRun:
        run_id = new_run_id()
        workdir = tmp / run_id
        workdir.mkdir(parents=True)
        results = results or workdir / "results"
        log = (workdir / "harness.log").open("w")
        # The run takes Ctrl-C as one started at a terminal does. A test session started in the
        # background by a non-interactive shell has SIGINT ignored, which a child would inherit;
        # a handled signal is reset to its default in the child instead.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            process = subprocess.Popen(
                [*HARNESS, "run", "--results-dir", str(results), *args,
                 "--", "--testrunuid", run_id, "--vm-slot-timeout", str(START_TIMEOUT_S), *pytest_args],
                stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        return cls(run_id, workdir, process, results)

    def output(self) -> str:
        return (self.workdir / "harness.log").read_text(errors="replace")

    def phases(self) -> set[str]:
        """Pipeline phases that ended (ok or not), from the run journal."""
        done: set[str] = set()
        for journal in (self.results / "journal").glob("*.jsonl"):
            for line in journal.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if record.get("kind") == "phase":
                    done.add(str(record.get("phase")))
        return done

    def wait_phase(self, phase: str, timeout_s: float = START_TIMEOUT_S) -> None:
        wait_until(lambda: phase in self.phases() or self.process.poll() is not None, timeout_s,
                   f"phase {phase} of run {self.run_id}", poll_s=0.2)
        if phase not in self.phases():
            pytest.fail(f"harness run {self.run_id} ended before its {phase} phase:\n{self.output()[-4000:]}")

    def wait_booting(self) -> None:
        """Until the run's first QEMU runs (the boot is under way)."""
        wait_until(lambda: hypervisors_of(self.run_id) or self.process.poll() is not None,
                   START_TIMEOUT_S, f"run {self.run_id} to start a VM", poll_s=0.2)
        if self.process.poll() is not None:
            pytest.fail(f"harness run {self.run_id} ended before booting:\n{self.output()[-4000:]}")

    def pytest_process(self) -> psutil.Process:
        children = psutil.Process(self.process.pid).children()
        [child] = [c for c in children if "pytest" in " ".join(c.cmdline())]
        return child

    def kill_runner(self, sig: signal.Signals) -> list[int]:
        """``sig`` to the ``harness`` process and its pytest child (never to QEMU); their pids."""
        child = self.pytest_process()
        pids = [self.process.pid, child.pid]
        # Both, as a terminal's Ctrl-C or a CI runner's kill reaches the whole foreground group.
        for pid in pids:
            os.kill(pid, sig)
        return pids

    def stop(self, timeout_s: float = 600.0) -> None:
        """SIGTERM (passed on to pytest, which removes its VMs), then SIGKILL if that hangs."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"harness run {self.run_id} hung:\n{self.output()[-4000:]}")


def gc_list() -> str:
    done = subprocess.run([*HARNESS, "gc", "--list"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_nothing_left(run_id: str, dead_pids: list[int]) -> None:
    """No VM directory (overlay), hypervisor, watchdog, lease or slot lock of the run remains."""
    assert run_vm_dirs(run_id) == [], "a VM directory (overlay) was left behind"
    assert hypervisors_of(run_id) == [], "a QEMU of the run is still running"
    leases = LeaseBook(PATHS.state / "leases")
    assert [lease.name for lease in leases.all() if f"-{run_id}-" in lease.name] == [], "lease left"
    assert not [p for p in (PATHS.state / "leases").glob("*.tmp*") if any(str(d) in p.name for d in dead_pids)]
    for pid in dead_pids:
        assert processes_naming(f"harness.vm.watchdog --state {PATHS.state} --cache {PATHS.cache} --owner {pid}") == [], \
            f"the watchdog of pid {pid} outlived its work"
    holders = SlotPool(PATHS.slots, 64).holders()
    assert not [h for h in holders if h.pid in dead_pids], f"a slot lock of a dead process is held: {holders}"
    assert f"-{run_id}-" not in gc_list(), "harness gc --list still shows the run's VMs"


def run_checks(results: Path) -> dict[str, dict[str, object]]:
    """The run's check records (outcome, message) by check name, from its journal."""
    from harness.journal import read_journal

    return {str(r["check"]): r for r in read_journal(results) if r.get("kind") == "check"}


def _side_channels(run_id: str, tmp: Path, opened: dict[str, SSHTransport]) -> Iterator[tuple[str, SSHTransport]]:
    """A side channel into each of the run's running VMs, first started first (kept in ``opened``)."""
    provider = QemuProvider(PATHS)
    for vm_dir in _running_vms_in_start_order(provider, run_id):
        if vm_dir.name not in opened:
            name = VMName.parse(vm_dir.name)
            assert name is not None
            endpoint = provider.wait_ready(name, 120)
            opened[vm_dir.name] = SSHTransport.connect(
                endpoint, known_hosts=tmp / f"{name}.known_hosts",
                log_path=tmp / f"{name}.side-channel.log", deadline_s=120)
        yield vm_dir.name, opened[vm_dir.name]


def guest_side_channel(run_id: str, tmp: Path, holding: str | None = None, wait_s: float = 600.0) -> SSHTransport:
    """An SSH connection of the test's own into one of the run's running VMs, to break it from
    inside: the first VM started where the shell test ``holding`` succeeds (the one whose installer
    or server a fault is meant for: a full run has its second VM up beside the first), polled
    until ``wait_s``; without ``holding``, the first VM started."""
    opened: dict[str, SSHTransport] = {}
    deadline = time.monotonic() + wait_s
    try:
        while True:
            for name, side in _side_channels(run_id, tmp, opened):
                if holding is None or side.run(holding, timeout=30).ok:
                    del opened[name]
                    return side
            if time.monotonic() > deadline:
                pytest.fail(f"no VM of run {run_id} where `{holding}` held within {wait_s:.0f} s")
            time.sleep(0.5)
    finally:
        for other in opened.values():
            other.close()


def _running_vms_in_start_order(provider: QemuProvider, run_id: str) -> list[Path]:
    started: dict[Path, float] = {}
    for vm_dir in run_vm_dirs(run_id):
        try:
            process = provider._process(provider.record(vm_dir.name))
            if process is not None:
                started[vm_dir] = process.create_time()
        except (HarnessError, OSError, psutil.Error):
            continue  # still being made (no record yet), or it went while we looked
    return sorted(started, key=started.__getitem__)


def hypervisor_pid(run_id: str) -> int:
    found = hypervisors_of(run_id)
    assert found, f"run {run_id} has no QEMU process"
    return int(min(found, key=lambda p: p.create_time()).pid)
