"""What real VMs leave behind (nothing) across processes: the slot cap shared by two pytest runs,
Ctrl-C and SIGTERM in the middle of a boot, a kept VM and `harness gc`, and the reaper after its
owner was SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from qemu_e2e_support import wait_for

from harness.config import HostPaths
from harness.host.reaper import reap
from harness.host.run_label import LeaseBook, VMName
from harness.vm.qemu.provider import QemuProvider

pytestmark = pytest.mark.vm

PATHS = HostPaths.from_env()
INNER_TEST = textwrap.dedent(
    """
    import os, time

    def test_uses_a_vm(vm):
        assert vm.run("true").ok
        if os.environ.get("CRASH"):
            os.kill(os.getpid(), 9)  # a worker dying hard: no teardown of its own runs
        time.sleep(float(os.environ.get("HOLD_S", "0")))
    """
)


def _run_id() -> str:
    return "e2e" + uuid.uuid4().hex[:7]


def _vm_dirs(run_id: str) -> list[Path]:
    if not PATHS.vms.is_dir():
        return []
    return [d for d in PATHS.vms.iterdir() if (n := VMName.parse(d.name)) and n.run_id == run_id]


def _qemu_pid(vm_dir: Path) -> int | None:
    try:
        return int((vm_dir / "qemu.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


@dataclass
class InnerRun:
    """A pytest process of its own, running ``INNER_TEST`` with the harness plugin."""

    run_id: str
    process: subprocess.Popen[str]
    log: Path

    @classmethod
    def start(cls, tmp: Path, *args: str, hold_s: float = 0, crash: bool = False) -> InnerRun:
        run_id = _run_id()
        workdir = tmp / run_id
        workdir.mkdir(parents=True)
        (workdir / "test_inner.py").write_text(INNER_TEST)
        log = workdir / "pytest.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s",
             "--rootdir", str(workdir), "--results-dir", str(workdir / "results"),
             "--testrunuid", run_id, "--vm-slot-timeout", "1200", *args, "test_inner.py"],
            cwd=workdir, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "HOLD_S": str(hold_s), "CRASH": "1" if crash else ""},
        )
        return cls(run_id, process, log)

    def wait(self, timeout_s: float = 900) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=120)
            pytest.fail(f"inner pytest {self.run_id} hung:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_boot(self) -> Path:
        """The run's VM directory once its QEMU runs; fails if the run ends before that."""
        wait_for(lambda: any(_qemu_pid(d) for d in _vm_dirs(self.run_id))
              or self.process.poll() is not None, 900, "the inner run's VM to start booting")
        if self.process.poll() is not None:
            pytest.fail(f"inner pytest {self.run_id} ended before booting:\n{self.output()}")
        [vm_dir] = _vm_dirs(self.run_id)
        return vm_dir


def _assert_nothing_left(run_id: str, qemu_pids: list[int]) -> None:
    assert _vm_dirs(run_id) == [], "VM directory (overlay) left behind"
    for pid in qemu_pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    leases = LeaseBook(PATHS.state / "leases").all()
    assert [lease.name for lease in leases if run_id in lease.name] == []


def test_two_pytest_processes_share_the_slot_cap(tmp_path: Path) -> None:
    runs = [InnerRun.start(tmp_path, "--max-vms", "1", hold_s=5) for _ in range(2)]
    run_ids = {run.run_id for run in runs}
    most_at_once, seen, pids = 0, set(), set()
    while any(run.process.poll() is None for run in runs):
        alive = [d for run_id in run_ids for d in _vm_dirs(run_id)]
        most_at_once = max(most_at_once, len(alive))
        seen |= {d.name for d in alive}
        pids |= {pid for d in alive if (pid := _qemu_pid(d))}
        time.sleep(0.1)
    for run in runs:
        assert run.wait() == 0, run.output()
    assert len(seen) == 2, f"expected one VM per process, saw {seen}"
    assert most_at_once == 1, "two VMs of --max-vms 1 runs were alive at once"
    for run_id in run_ids:
        _assert_nothing_left(run_id, list(pids))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_mid_boot_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    # --cold: a warm start could reach SSH before the signal lands; a cold boot takes 30 s+.
    run = InnerRun.start(tmp_path, "--keep-vm", "always", "--cold")
    vm_dir = run.wait_for_boot()
    qemu = _qemu_pid(vm_dir)
    assert qemu is not None and psutil.pid_exists(qemu)
    time.sleep(2)  # inside the boot wait, not at its edge
    run.process.send_signal(sig)
    code = run.wait(timeout_s=180)
    assert code != 0, run.output()
    _assert_nothing_left(run.run_id, [qemu])
    assert "KeyboardInterrupt" in run.output(), "the signal should have interrupted the boot"
    assert "kept VM" not in run.output(), "an interrupted run must not keep its VM"


def test_a_crashed_xdist_worker_leaves_nothing(tmp_path: Path) -> None:
    # As `harness run -n` does: a crashed worker is not replaced (a replacement would run the
    # crashing test again, and again).
    run = InnerRun.start(tmp_path, "-n", "1", "--max-worker-restart", "0", crash=True)
    vm_dir = run.wait_for_boot()
    qemu = _qemu_pid(vm_dir)
    assert run.wait() != 0
    output = run.output()
    assert "crashed" in output, output
    # The worker's watchdog removes its VM at once; the reaper at the worker's crash is the belt.
    watchdog_logs = "".join(p.read_text() for p in (run.log.parent / "results" / "vms").glob("watchdog-*.log"))
    assert (f"harness reaper (worker crashed): removed {vm_dir.name}" in output
            or f"removed {vm_dir.name}" in watchdog_logs), output + watchdog_logs
    _assert_nothing_left(run.run_id, [qemu] if qemu else [])


def test_a_kept_vm_can_be_logged_into_and_removed_with_gc(tmp_path: Path) -> None:
    run = InnerRun.start(tmp_path, "--keep-vm", "always")
    assert run.wait() == 0, run.output()
    [vm_dir] = _vm_dirs(run.run_id)
    qemu = _qemu_pid(vm_dir)
    try:
        assert qemu is not None and psutil.pid_exists(qemu), "a kept VM keeps running"
        output = run.output()
        assert "kept VMs" in output and f"harness gc --name {vm_dir.name}" in output
        [login] = [line.split("log in:", 1)[1].strip() for line in output.splitlines()
                   if "log in:" in line and "ssh -p" in line][:1]
        batch = login.replace("ssh ", "ssh -o BatchMode=yes ", 1)
        done = subprocess.run(f"{batch} echo logged-in", shell=True, check=False, capture_output=True,
                              text=True, timeout=120)
        assert (done.returncode, done.stdout) == (0, "logged-in\n"), done.stderr
        # The reaper leaves kept VMs alone; gc --name removes this one.
        assert vm_dir.name not in [o.leftover.name for o in reap([QemuProvider(PATHS)], PATHS)]
    finally:
        gc = subprocess.run([sys.executable, "-m", "harness.cli", "gc", "--name", vm_dir.name], check=False,
                            capture_output=True, text=True, timeout=120)
    assert gc.returncode == 0, gc.stderr
    assert f"removed {vm_dir.name}" in gc.stdout
    _assert_nothing_left(run.run_id, [qemu] if qemu else [])


OWNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from harness.config import HostPaths
    from harness.vm.machine import Machine, MachineSettings
    from harness.vm.qemu.provider import QemuProvider
    from harness.host.slots import SlotPool

    paths = HostPaths.from_env()
    settings = MachineSettings(image="linux-debian12", run_id=sys.argv[1],
                               artifacts_root=Path(sys.argv[2]), slot_timeout_s=1200)
    Machine(QemuProvider(paths), settings, slots=SlotPool(paths.slots, 2)).start()
    """
)


def _dead(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _watchdogs_of(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if "harness.vm.watchdog" in " ".join(p.info["cmdline"] or []) and f"--owner {pid}" in " ".join(p.info["cmdline"] or [])]


def test_the_reaper_removes_a_vm_whose_owner_and_watchdog_were_killed(tmp_path: Path) -> None:
    """The belt: when the watchdog dies with its owner, the reaper (and `harness gc`) still cleans."""
    run_id = _run_id()
    owner = subprocess.Popen([sys.executable, "-c", OWNER, run_id, str(tmp_path)])
    try:
        wait_for(lambda: any(_qemu_pid(d) for d in _vm_dirs(run_id)) or owner.poll() is not None,
              900, "the owner's VM to start")
        assert owner.poll() is None, "the owner ended before its VM booted (see its stderr above)"
        watchdogs = _watchdogs_of(owner.pid)
        assert len(watchdogs) == 1, "the Machine should have started a watchdog of its own"
        for watchdog in watchdogs:
            watchdog.kill()  # SIGKILL first, so that it cannot see its owner go
            # Dead once it is a zombie: its parent, the owner, never reaps it.
            wait_for(lambda w=watchdog: _dead(w), 30, "the killed watchdog to die")
    finally:
        owner.kill()  # SIGKILL: no cleanup of its own can run
        owner.wait(timeout=30)
    [vm_dir] = _vm_dirs(run_id)
    qemu = _qemu_pid(vm_dir)
    assert qemu is not None and psutil.pid_exists(qemu), "the orphaned VM should still run"
    assert (vm_dir / "overlay.qcow2").exists()

    outcomes = reap([QemuProvider(PATHS)], PATHS)

    removed = {o.leftover.name: o for o in outcomes if o.removed}
    # Another run's reaper may have been faster; what matters is that nothing is left.
    assert vm_dir.name in removed or not vm_dir.exists()
    _assert_nothing_left(run_id, [qemu])
