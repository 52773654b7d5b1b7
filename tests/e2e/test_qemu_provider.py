"""QemuProvider against real QEMU and the real Debian image: boot to an SSH banner, copy-on-write
disks that leave the base untouched, boot failures that carry the console, and deletes that
leave no process and no file. At most one VM at a time, inside the host's shared slot cap.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import psutil
import pytest

from harness.config import HostPaths
from harness.errors import BootTimeout
from harness.vm import qemu as qemu_module
from harness.vm.accel import choose_accel, kvm_usable, run_probe
from harness.vm.host_tools import require_tool
from harness.vm.images import BuiltImage, ImageStore
from harness.vm.provider import VMName
from harness.vm.qemu import QemuProvider, read_ssh_banner
from harness.vm.slots import SlotPool

pytestmark = pytest.mark.vm

IMAGE = "linux-debian12"
BOOT_TIMEOUT_S = 600.0  # TCG on a shared 2-core host; ~30 s when idle, minutes when crowded
HOST_VM_CAP = 2  # the default --max-vms, shared with every other harness run on this host
PATHS = HostPaths.from_env()
RUN_ID = "qe2e" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def base_image() -> BuiltImage:
    """The current Debian image, built once if missing (needs root and Debian's mirror)."""
    return ImageStore(PATHS).ensure(IMAGE)


@pytest.fixture(scope="module")
def provider() -> QemuProvider:
    return QemuProvider(PATHS)


@pytest.fixture
def slot() -> Iterator[None]:
    with SlotPool(PATHS.slots, HOST_VM_CAP).acquire(timeout_s=BOOT_TIMEOUT_S * 2, label=f"test_qemu {RUN_ID}"):
        yield


def _qemu_processes_of(vm_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(vm_dir) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def _assert_gone(provider: QemuProvider, name: VMName) -> None:
    vm_dir = provider.vm_dir(name)
    assert not vm_dir.exists(), f"{vm_dir} left behind"
    assert _qemu_processes_of(vm_dir) == [], f"QEMU of {name} still running"
    assert str(name) not in [info.name for info in provider.list()]


@pytest.fixture
def fresh_vm(provider: QemuProvider, base_image: BuiltImage, slot: None) -> Iterator[VMName]:
    """A cloned (not started) VM that is deleted, and checked gone, whatever the test did."""
    name = VMName.new(RUN_ID)
    provider.clone(IMAGE, name)
    try:
        yield name
    finally:
        provider.delete(name)
        _assert_gone(provider, name)


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- one booted VM for the module


@dataclass(frozen=True)
class Booted:
    provider: QemuProvider
    name: VMName
    endpoint: qemu_module.SSHEndpoint
    ready_s: float
    base: BuiltImage

    def ssh(self, command: str, timeout_s: float = 120.0) -> str:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(self.endpoint.host, port=self.endpoint.port, username=self.endpoint.user,
                       key_filename=str(self.endpoint.key_path), timeout=30, banner_timeout=60,
                       auth_timeout=60, look_for_keys=False, allow_agent=False)
        try:
            _, stdout, stderr = client.exec_command(command, timeout=timeout_s)
            status = stdout.channel.recv_exit_status()
            out = stdout.read().decode()
            assert status == 0, f"{command!r} exited {status}: {stderr.read().decode()}"
            return out
        finally:
            client.close()


@pytest.fixture(scope="module")
def booted(provider: QemuProvider, base_image: BuiltImage) -> Iterator[Booted]:
    name = VMName.new(RUN_ID)
    with SlotPool(PATHS.slots, HOST_VM_CAP).acquire(timeout_s=BOOT_TIMEOUT_S * 2, label=f"test_qemu {RUN_ID}"):
        try:
            started = time.monotonic()
            provider.clone(IMAGE, name)
            provider.start(name)
            endpoint = provider.wait_ready(name, BOOT_TIMEOUT_S)
            yield Booted(provider, name, endpoint, time.monotonic() - started, base_image)
        finally:
            provider.delete(name)
            _assert_gone(provider, name)


def test_ready_means_sshd_answers_with_its_banner(booted: Booted) -> None:
    endpoint = booted.endpoint
    assert (endpoint.host, endpoint.user) == ("127.0.0.1", "tester")
    assert endpoint.key_path == booted.base.private_key and endpoint.password is None
    assert read_ssh_banner(endpoint.port, timeout_s=10).startswith(b"SSH-2.0-OpenSSH")
    print(f"clone to SSH banner: {booted.ready_s:.1f}s")


def test_guest_is_the_clean_image(booted: Booted) -> None:
    facts = booted.ssh("id -un; hostname; sudo -n true && echo sudo-ok; "
                       "ls /usr/bin /usr/local/bin /bin | grep -c '^python' || true; "
                       "ls /etc/ssh/ssh_host_*_key; cat /etc/machine-id")
    user, hostname, sudo, pythons, host_key, machine_id = facts.split()
    assert (user, hostname, sudo, pythons) == ("tester", "hns-debian12", "sudo-ok", "0")
    assert host_key == "/etc/ssh/ssh_host_ed25519_key"  # made on this clone's first boot
    assert len(machine_id) == 32  # fresh per boot: the image ships an empty one


def test_record_and_listing_describe_the_running_vm(booted: Booted) -> None:
    record = booted.provider.record(booted.name)
    assert record.ssh_port == booted.endpoint.port and record.owner_pid == os.getpid()
    assert record.accel == choose_accel(PATHS).name and record.image_hash == booted.base.content_hash
    pid_file = booted.provider.vm_dir(booted.name) / "qemu.pid"
    assert int(pid_file.read_text()) == record.qemu_pid and psutil.pid_exists(record.qemu_pid or -1)
    states = {info.name: info.state for info in booted.provider.list()}
    assert states[str(booted.name)] == "running"


def test_console_log_holds_the_boot(booted: Booted) -> None:
    tail = booted.provider.console_tail(booted.name, lines=400)
    assert "hns-debian12 login:" in tail
    assert "\x1b" not in tail


def test_overlay_is_backed_by_the_base_image(booted: Booted) -> None:
    overlay = booted.provider.vm_dir(booted.name) / "overlay.qcow2"
    info = json.loads(subprocess.run(
        [require_tool("qemu-img", "inspect disks"), "info", "-U", "--output=json", str(overlay)],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    assert info["backing-filename"] == str(booted.base.disk)


def test_guest_writes_leave_the_base_image_untouched(booted: Booted) -> None:
    overlay = booted.provider.vm_dir(booted.name) / "overlay.qcow2"
    before = overlay.stat().st_size
    booted.ssh("dd if=/dev/urandom of=/home/tester/blob bs=1M count=32 status=none && sync")
    assert overlay.stat().st_size >= before + 32 * 2**20  # the writes landed in the overlay ...
    assert _sha256(booted.base.disk) == booted.base.manifest["image_sha256"]  # ... not in the base


def test_graceful_stop_powers_the_guest_off(booted: Booted) -> None:
    # Runs last in this module: the VM is stopped afterwards (deleted by the fixture).
    pid = booted.provider.record(booted.name).qemu_pid
    booted.provider.stop(booted.name, timeout_s=120)
    assert pid is not None and not psutil.pid_exists(pid)
    assert "reboot: Power down" in booted.provider.console_tail(booted.name, lines=20)
    assert {i.name: i.state for i in booted.provider.list()}[str(booted.name)] == "stopped"


# ---------------------------------------------------------------- failures


def test_boot_timeout_carries_the_console_tail(provider: QemuProvider, fresh_vm: VMName) -> None:
    provider.start(fresh_vm)
    serial = provider.serial_log(fresh_vm)
    _wait_for(lambda: b"Linux version" in serial.read_bytes(), 300, "the kernel's first console line")
    with pytest.raises(BootTimeout) as caught:
        provider.wait_ready(fresh_vm, timeout_s=0.5)
    error = caught.value
    assert "no SSH banner within" in error.message and "QEMU still running" in error.message
    assert "Linux version" in error.detail and str(serial) in error.detail


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


def test_kvm_probe_verdict_matches_a_real_probe() -> None:
    qemu = require_tool("qemu-system-x86_64", "boot Linux guests")
    tcg = run_probe(qemu, "tcg", deadline_s=15)
    assert tcg.works, f"TCG must boot the probe sector: {tcg.stderr}"
    choice = choose_accel(PATHS)
    if kvm_usable():
        kvm = run_probe(qemu, "kvm")
        assert choice.name == ("kvm" if kvm.works else "tcg"), choice.note
        print(f"kvm probe: works={kvm.works} in {kvm.seconds}s; tcg probe {tcg.seconds}s; verdict {choice}")
