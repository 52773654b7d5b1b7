"""How the QEMU provider fails: a boot deadline that carries the console, a QEMU that dies
mid-boot, a forwarded port taken before QEMU could bind it, a guest kernel that panics. Each VM is started but never waited
for, and is checked gone (no process, no file) afterwards.
"""

# ruff: noqa: F811  (pytest fixtures imported from qemu_e2e_support are parameters here)
from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from qemu_e2e_support import (  # noqa: F401  (fixtures)
    HOST_VM_CAP,
    PATHS,
    base_image,
    fresh_vm,
    provider,
    slot,
    wait_for,
)

from harness.errors import BootTimeout, InfrastructureError
from harness.host.run_label import VMName
from harness.host.slots import SlotPool
from harness.vm.machine import Machine, MachineSettings
from harness.vm.qemu import provider as qemu_module
from harness.vm.qemu.provider import QemuProvider

pytestmark = pytest.mark.vm


def test_boot_timeout_carries_the_console_tail(provider: QemuProvider, fresh_vm: VMName) -> None:
    provider.start(fresh_vm)
    serial = provider.serial_log(fresh_vm)
    wait_for(lambda: b"Linux version" in serial.read_bytes(), 300, "the kernel's first console line")
    with pytest.raises(BootTimeout) as caught:
        provider.wait_ready(fresh_vm, timeout_s=0.5)
    error = caught.value
    assert "no SSH banner within" in error.message and "QEMU still running" in error.message
    assert f"--- serial console ({serial}) ---" in error.detail
    assert re.search(r"^\[\s*\d+\.\d+\] ", error.detail, re.MULTILINE)  # kernel lines made it in
    assert "--- QEMU output ---" not in error.detail  # QEMU said nothing worth showing


def test_qemu_death_during_boot_is_reported(provider: QemuProvider, fresh_vm: VMName) -> None:
    provider.start(fresh_vm)
    pid = provider.record(fresh_vm).qemu_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BootTimeout) as caught:
        provider.wait_ready(fresh_vm, timeout_s=60)
    assert "QEMU died" in caught.value.message and "QEMU exited before SSH answered" in caught.value.message


def test_port_taken_before_qemu_binds_it_is_retried(provider: QemuProvider, fresh_vm: VMName,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    squatter = socket.create_server(("127.0.0.1", 0))
    taken = squatter.getsockname()[1]
    offered = iter([taken])
    real = qemu_module.free_loopback_port
    monkeypatch.setattr(qemu_module, "free_loopback_port", lambda: next(offered, None) or real())
    try:
        provider.start(fresh_vm)
    finally:
        squatter.close()
    record = provider.record(fresh_vm)
    assert record.ssh_port not in (None, taken)
    log = (provider.vm_dir(fresh_vm) / "qemu.log").read_text()
    assert f"port {taken}" in log and "host forwarding" in log  # the first attempt failed on it
    assert {i.name: i.state for i in provider.list()}[str(fresh_vm)] == "running"


def test_a_guest_kernel_panic_mid_command_is_named_in_seconds(tmp_path: Path) -> None:
    """A sysrq crash while a long command runs: the command fails within seconds (panic=-1 and
    -no-reboot end QEMU), naming the VM as gone, with the panic from its console."""
    settings = MachineSettings(image="linux-debian12", run_id="qe2epanic", artifacts_root=tmp_path,
                               slot_timeout_s=1800)
    with Machine(QemuProvider(), settings, slots=SlotPool(PATHS.slots, HOST_VM_CAP), say=lambda _t: None) as vm:
        vm.run("sudo -n sh -c 'sleep 3; echo c > /proc/sysrq-trigger' >/dev/null 2>&1 &", timeout=60)
        started = time.monotonic()
        with pytest.raises(InfrastructureError) as caught:
            vm.run("sleep 600", timeout=900)
        took = time.monotonic() - started
        assert f"VM {vm.name} is no longer running" in caught.value.message, caught.value
        assert "Kernel panic - not syncing" in caught.value.detail, caught.value.detail
    assert took < 60, f"the panic took {took:.0f} s to surface"
    assert not QemuProvider().vm_dir(vm.name).exists()
