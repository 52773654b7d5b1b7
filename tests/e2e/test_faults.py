"""The fault suite: a real ``harness run`` on the reference release, one fault injected at a
known point of its pipeline, then three questions: did the user get a clear outcome (never a
hang, never a pass), is nothing of the run left on the host, and does the next run work?

CI runs the SIGKILL probe (the runner killed during the install); every other row of the README's
fault table is ``ondemand`` (HARNESS_ONDEMAND=1).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from fault_support import (
    PATHS,
    HarnessRun,
    assert_nothing_left,
    gc_list,
    hypervisors_of,
    run_vm_dirs,
    wait_until,
)

from harness.vm.machine import Machine, MachineSettings
from harness.vm.qemu import QemuProvider
from harness.vm.slots import SlotPool

pytestmark = pytest.mark.vm

KILL_TO_CLEAN_LIMIT_S = 10.0
INTERRUPT_EXIT_TIMEOUT_S = 300.0
# Into the installer: after the copy, the file-system snapshot takes a few seconds, then the
# reference installer runs for about a minute under emulation.
INTO_INSTALL_S = 12.0


def assert_next_run_works(tmp: Path) -> None:
    """A fresh VM boots and answers on this host right after the fault (slots, leases, images)."""
    settings = MachineSettings(image="linux-debian12", run_id="fltnext", artifacts_root=tmp / "next",
                               slot_timeout_s=1800)
    with Machine(QemuProvider(PATHS), settings, slots=SlotPool(PATHS.slots, 2), say=lambda _t: None) as vm:
        assert vm.run("echo next-run-ok").stdout == "next-run-ok\n"


def _figure(tmp: Path, name: str, value: float) -> None:
    """Measured figures land next to the test's files (and in its captured output)."""
    print(f"FIGURE {name} = {value:.2f}")
    with (tmp / "figures.jsonl").open("a") as handle:
        handle.write(json.dumps({name: round(value, 2)}) + "\n")


def _inject_at(run: HarnessRun, phase: str) -> None:
    """Return once ``run`` is inside ``phase``; the journal records a phase when it ends."""
    if phase == "boot":
        run.wait_booting()
        time.sleep(2)  # inside the boot wait, not at its edge
    elif phase == "copy":
        run.wait_phase("twin_boot")  # the copy follows a short guest probe
    elif phase == "install":
        run.wait_phase("twin_copy")
        time.sleep(INTO_INSTALL_S)
        assert "twin_install" not in run.phases(), "the install ended before the fault landed"
    elif phase == "serve":
        run.wait_phase("serve")  # the primary VM's server answers; checks are running
    else:
        raise AssertionError(phase)


def test_sigkill_during_install_leaves_nothing_within_10s(tmp_path: Path) -> None:
    """The probe: SIGKILL to `harness` and its pytest child (not QEMU) mid-install, no gc."""
    run = HarnessRun.start(tmp_path)
    _inject_at(run, "install")
    assert hypervisors_of(run.run_id), "the run's VM should be running before the kill"
    dead = run.kill_runner(signal.SIGKILL)
    killed_at = time.monotonic()
    assert run.wait(30) == -signal.SIGKILL
    wait_until(lambda: not hypervisors_of(run.run_id), 60, "the dead run's QEMU to go")
    no_qemu = time.monotonic() - killed_at
    wait_until(lambda: not run_vm_dirs(run.run_id), 60, "the dead run's overlay to go")
    clean = time.monotonic() - killed_at
    _figure(tmp_path, "sigkill_to_no_qemu_s", no_qemu)
    _figure(tmp_path, "sigkill_to_clean_s", clean)
    assert no_qemu <= KILL_TO_CLEAN_LIMIT_S, f"QEMU outlived its run by {no_qemu:.1f}s"
    assert clean <= KILL_TO_CLEAN_LIMIT_S, f"the overlay outlived its run by {clean:.1f}s"
    assert f"-{run.run_id}-" not in gc_list()  # without running gc
    assert_nothing_left(run.run_id, dead)
    watchdog_logs = list((run.results / "vms").glob("watchdog-*.log"))
    assert any("owner" in log.read_text() and "removed hns-" in log.read_text() for log in watchdog_logs)
    assert_next_run_works(tmp_path)


SIGNAL_FAULTS = [
    pytest.param(sig, phase, marks=pytest.mark.ondemand, id=f"{sig.name}-{phase}")
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    for phase in ("boot", "copy", "install", "serve")
    if (sig, phase) != (signal.SIGKILL, "install")  # the CI probe above
]


@pytest.mark.parametrize(("sig", "phase"), SIGNAL_FAULTS)
def test_the_runner_killed_at_any_phase_leaves_nothing(tmp_path: Path, sig: signal.Signals, phase: str) -> None:
    run = HarnessRun.start(tmp_path, *(["--cold"] if phase == "boot" else []))
    _inject_at(run, phase)
    dead = run.kill_runner(sig)
    code = run.wait(INTERRUPT_EXIT_TIMEOUT_S)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        took = wait_until(lambda: not run_vm_dirs(run.run_id) and not hypervisors_of(run.run_id), 60,
                          "the dead run's VMs to go")
        _figure(tmp_path, f"sigkill_{phase}_to_clean_s", took)
        assert took <= KILL_TO_CLEAN_LIMIT_S
    else:
        # An interrupt: pytest tears its VMs down itself and says the run was interrupted.
        assert code != 0, run.output()[-3000:]
        output = run.output()
        assert "Interrupted" in output or "KeyboardInterrupt" in output, output[-3000:]
        signoff = run.results / "signoff.json"
        if signoff.exists():
            verdict = json.loads(signoff.read_text())["verdict"]
            assert not verdict["ship"], "an interrupted run must never say SHIP"
    assert_nothing_left(run.run_id, dead)
    assert_next_run_works(tmp_path)
