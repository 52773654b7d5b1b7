"""QemuProvider against real QEMU and the real Debian image: boot to an SSH banner, copy-on-write
disks that leave the base untouched, a clean power-down, and a delete that leaves no process and
no file. One VM for the whole module, inside the host's shared slot cap.
"""

# ruff: noqa: F811  (pytest fixtures imported from qemu_e2e_support are parameters here)
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import psutil
import pytest
from qemu_e2e_support import (  # noqa: F401  (fixtures)
    BOOT_TIMEOUT_S,
    HOST_VM_CAP,
    IMAGE,
    PATHS,
    RUN_ID,
    assert_gone,
    base_image,
    provider,
)

from harness.hashing import sha256_file
from harness.host.run_label import VMName
from harness.host.slots import SlotPool
from harness.host.tools import require_tool
from harness.images.store import BuiltImage
from harness.ssh.endpoint import SSHEndpoint
from harness.vm.provider import VMOptions
from harness.vm.qemu.accel import choose_accel
from harness.vm.qemu.provider import QemuProvider, read_ssh_banner

pytestmark = pytest.mark.vm


# ---------------------------------------------------------------- one booted VM for the module


@dataclass(frozen=True)
class Booted:
    provider: QemuProvider
    name: VMName
    endpoint: SSHEndpoint
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
            provider.clone(IMAGE, name, VMOptions(capture_traffic=True))
            provider.start(name)
            endpoint = provider.wait_ready(name, BOOT_TIMEOUT_S)
            yield Booted(provider, name, endpoint, time.monotonic() - started, base_image)
        finally:
            provider.delete(name)
            assert_gone(provider, name)


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
    assert record.accel == choose_accel(PATHS, booted.base.kernel).name and record.image_hash == booted.base.content_hash
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
    assert sha256_file(booted.base.disk) == booted.base.manifest["image_sha256"]  # ... not in the base


def _udp_destination_ports(pcap: Path) -> list[int]:
    """Destination ports of the IPv4/UDP frames in a classic little-endian pcap file."""
    data = pcap.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "not a pcap file"
    ports, offset = [], 24
    while offset + 16 <= len(data):
        captured = int.from_bytes(data[offset + 8:offset + 12], "little")
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        if len(frame) >= 42 and frame[12:14] == b"\x08\x00" and frame[23] == 17:  # IPv4, UDP
            header = (frame[14] & 0x0F) * 4
            ports.append(int.from_bytes(frame[14 + header + 2:14 + header + 4], "big"))
    return ports


def test_traffic_capture_records_what_the_guest_sent(booted: Booted) -> None:
    pcap = booted.provider.traffic_pcap(booted.name)
    assert pcap == booted.provider.vm_dir(booted.name) / "traffic.pcap"
    booted.ssh("getent hosts harness-egress-probe.invalid || true")  # a lookup that must leave the guest
    ports = _udp_destination_ports(pcap)
    assert 67 in ports, "the guest's DHCP request is missing from the capture"
    assert 53 in ports, "the guest's DNS query is missing from the capture"


def test_graceful_stop_powers_the_guest_off(booted: Booted) -> None:
    # Runs last in this module: the VM is stopped afterwards (deleted by the fixture).
    pid = booted.provider.record(booted.name).qemu_pid
    booted.provider.stop(booted.name, timeout_s=120)
    assert pid is not None and not psutil.pid_exists(pid)
    assert "reboot: Power down" in booted.provider.console_tail(booted.name, lines=20)
    assert {i.name: i.state for i in booted.provider.list()}[str(booted.name)] == "stopped"
