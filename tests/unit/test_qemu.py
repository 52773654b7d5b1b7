"""QemuProvider without booting anything: command lines, on-disk records, identity, errors."""

# ruff: noqa: F811  (pytest fixtures imported from qemu_fakes are parameters here)
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from qemu_fakes import FakeImages, built_tiny, fake_images  # noqa: F401  (fixtures)

from harness.errors import BootTimeout, UsageError
from harness.host.run_label import VMName
from harness.vm.provider import Provider, VMOptions
from harness.vm.qemu.network import CAPTURE_SNAPLEN
from harness.vm.qemu.provider import (
    QemuLaunch,
    QemuProvider,
    VMRecord,
    clean_console,
    free_loopback_port,
    qemu_command,
    read_ssh_banner,
)


def _launch(tmp_path: Path, options: VMOptions | None = None) -> QemuLaunch:
    return QemuLaunch(
        name="hns-r1-42-abc123", vm_dir=tmp_path / "vm", kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd.img"),
        kernel_cmdline="root=/dev/vda console=ttyS0", ssh_port=40022,
        accel_args=("-accel", "tcg,thread=multi", "-cpu", "max"), options=options or VMOptions(),
    )


def _option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


@pytest.fixture
def provider(built_tiny: FakeImages) -> QemuProvider:
    return QemuProvider(built_tiny.paths, built_tiny.store)


# ---------------------------------------------------------------- command line


def test_command_line_isolates_the_guest_and_boots_directly(tmp_path: Path) -> None:
    argv = qemu_command("/usr/bin/qemu-system-x86_64", _launch(tmp_path))
    assert _option(argv, "-netdev") == ["user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"]
    assert "-no-reboot" in argv and "-nodefaults" in argv
    assert _option(argv, "-serial") == [f"file:{tmp_path / 'vm' / 'serial.log'}"]
    assert _option(argv, "-kernel") == ["/img/vmlinuz"] and _option(argv, "-initrd") == ["/img/initrd.img"]
    assert _option(argv, "-append") == ["root=/dev/vda console=ttyS0 panic=-1"]  # a panic ends QEMU
    assert not any("guestfwd" in arg for arg in argv)
    drive = _option(argv, "-drive")[0]
    assert drive.startswith(f"file={tmp_path / 'vm' / 'overlay.qcow2'},if=virtio,format=qcow2")
    assert "virtio-net-pci,netdev=n0" in _option(argv, "-device")
    assert _option(argv, "-accel") == ["tcg,thread=multi"] and _option(argv, "-cpu") == ["max"]
    assert _option(argv, "-smp") == ["2"] and _option(argv, "-m") == ["2048"]
    assert "path=qmp.sock" in _option(argv, "-chardev")[0]  # relative: cwd is the VM dir
    assert _option(argv, "-object") == []  # no capture unless asked


def test_command_line_captures_traffic_when_asked(tmp_path: Path) -> None:
    into_vm_dir = qemu_command("qemu", _launch(tmp_path, VMOptions(capture_traffic=True)))
    assert _option(into_vm_dir, "-object") == [f"filter-dump,id=dump0,netdev=n0,file={tmp_path / 'vm' / 'traffic.pcap'},maxlen={CAPTURE_SNAPLEN}"]
    elsewhere = qemu_command("qemu", _launch(tmp_path, VMOptions(capture_traffic=True, pcap_path=tmp_path / "x.pcap")))
    assert _option(elsewhere, "-object")[0].endswith(f"file={tmp_path / 'x.pcap'},maxlen={CAPTURE_SNAPLEN}")
    sized = qemu_command("qemu", _launch(tmp_path, VMOptions(cpus=1, memory_mb=4096)))
    assert _option(sized, "-smp") == ["1"] and _option(sized, "-m") == ["4096"]


def test_commas_in_paths_are_escaped_for_qemu_options(tmp_path: Path) -> None:
    odd = _launch(tmp_path / "a,b", VMOptions(capture_traffic=True))
    argv = qemu_command("qemu", odd)
    assert _option(argv, "-drive")[0].startswith(f"file={tmp_path}/a,,b/vm/overlay.qcow2,if=virtio")
    assert _option(argv, "-serial") == [f"file:{tmp_path}/a,,b/vm/serial.log"]
    assert _option(argv, "-object")[0].endswith(f"file={tmp_path}/a,,b/vm/traffic.pcap,maxlen={CAPTURE_SNAPLEN}")


def test_free_port_is_bindable() -> None:
    port = free_loopback_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ---------------------------------------------------------------- readiness probe


def _serve_once(greeting: bytes) -> int:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            if greeting:
                conn.sendall(greeting)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def test_banner_is_read_from_a_real_listener() -> None:
    port = _serve_once(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    assert read_ssh_banner(port, timeout_s=5).startswith(b"SSH-2.0-")


def test_accept_then_close_is_not_ready() -> None:
    # What slirp does while the guest's sshd is not listening yet.
    assert read_ssh_banner(_serve_once(b""), timeout_s=5) == b""


def test_nothing_listening_is_not_ready() -> None:
    assert read_ssh_banner(free_loopback_port(), timeout_s=1) == b""


def test_console_is_cleaned_of_escape_sequences() -> None:
    raw = (b"\x1b[0;32m  OK  \x1b[0m] Started ssh.service\r\n\x1bM\x1b[K[   *] waiting\r\n"
           b"\x1bc\x1b[?2004h\x07hns-debian12 login: ")
    assert clean_console(raw, 60) == "  OK  ] Started ssh.service\n[   *] waiting\nhns-debian12 login: "
    assert clean_console(b"a\nb\nc\n", 2) == "b\nc"


# ---------------------------------------------------------------- clone / list / delete


def test_provider_satisfies_the_protocol(provider: QemuProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.images() == ["linux-tiny"]


def test_clone_makes_an_overlay_on_the_untouched_base(provider: QemuProvider, built_tiny: FakeImages) -> None:
    name = VMName.new("unit")
    base = built_tiny.store.current("linux-tiny").disk
    base_before = base.read_bytes()
    provider.clone("linux-tiny", name, VMOptions(cpus=1, capture_traffic=True))
    vm_dir = provider.vm_dir(name)
    assert (vm_dir / "overlay.qcow2").exists()
    record = provider.record(name)
    assert (record.image, record.owner_pid, record.qemu_pid) == ("linux-tiny", os.getpid(), None)
    assert record.vm_options() == VMOptions(cpus=1, capture_traffic=True)
    assert provider.traffic_pcap(name) == vm_dir / "traffic.pcap"
    assert provider.backing_files_in_use() == {base}
    assert base.read_bytes() == base_before


def test_clone_refuses_an_existing_name(provider: QemuProvider) -> None:
    name = VMName.new("unit")
    provider.clone("linux-tiny", name)
    with pytest.raises(UsageError, match="already exists"):
        provider.clone("linux-tiny", name)
    assert provider.vm_dir(name).exists()  # the first clone is untouched


def test_clone_of_unknown_image_lists_known_and_leaves_nothing(provider: QemuProvider) -> None:
    name = VMName.new("unit")
    with pytest.raises(UsageError) as caught:
        provider.clone("linux-nope", name)
    assert "linux-tiny" in caught.value.hint
    assert not provider.vm_dir(name).exists()


def test_clone_wants_a_harness_name(provider: QemuProvider) -> None:
    with pytest.raises(UsageError, match="not a harness name"):
        provider.clone("linux-tiny", "my-vm")  # type: ignore[arg-type]


def test_list_judges_liveness_by_pid_and_start_time(provider: QemuProvider) -> None:
    alive, recycled = VMName.new("unit"), VMName.new("unit")
    provider.clone("linux-tiny", alive)
    provider.clone("linux-tiny", recycled)
    # One live process whose command line names both VM dirs: only the start time tells them apart.
    stand_in = subprocess.Popen(["sh", "-c", "sleep 60; exit 0", str(provider.vm_dir(alive)),
                                 str(provider.vm_dir(recycled))], start_new_session=True)
    try:
        process = psutil.Process(stand_in.pid)
        while str(provider.vm_dir(alive)) not in process.cmdline():  # until exec has happened
            time.sleep(0.01)
        started = process.create_time()
        provider._save(replace(provider.record(alive), qemu_pid=stand_in.pid, qemu_started=started))
        # The same pid with another start time is a recycled pid: not this VM's QEMU.
        provider._save(replace(provider.record(recycled), qemu_pid=stand_in.pid, qemu_started=started - 100))
        states = {info.name: info.state for info in provider.list()}
        assert states[str(alive)] == "running"
        assert states[str(recycled)] == "stopped"
    finally:
        stand_in.kill()
        stand_in.wait(timeout=10)


def test_stop_kills_a_process_that_does_not_speak_qmp(provider: QemuProvider) -> None:
    name = VMName.new("unit")
    provider.clone("linux-tiny", name)
    # Stands in for a hung QEMU: alive, its command line names the VM dir, no QMP socket.
    stand_in = subprocess.Popen(["sh", "-c", "sleep 60; exit 0", str(provider.vm_dir(name))], start_new_session=True)
    try:
        process = psutil.Process(stand_in.pid)
        while str(provider.vm_dir(name)) not in process.cmdline():  # until exec has happened
            time.sleep(0.01)
        started = process.create_time()
        provider._save(replace(provider.record(name), qemu_pid=stand_in.pid, qemu_started=started))
        assert [info.state for info in provider.list()] == ["running"]
        provider.stop(name, timeout_s=0)
        assert not psutil.pid_exists(stand_in.pid)  # killed and reaped by stop()
        assert [info.state for info in provider.list()] == ["stopped"]
    finally:
        stand_in.kill()
        stand_in.wait()


def test_list_reports_foreign_and_damaged_entries(provider: QemuProvider) -> None:
    (provider.paths.vms / "someone-elses-vm").mkdir(parents=True)
    ours = VMName.new("unit")
    provider.clone("linux-tiny", ours)
    (provider.vm_dir(ours) / "meta.json").write_text("{not json")
    infos = {info.name: info for info in provider.list()}
    assert infos["someone-elses-vm"].owner_pid is None and infos["someone-elses-vm"].state == "unknown"
    assert infos[str(ours)].owner_pid == os.getpid() and infos[str(ours)].state == "unknown"


def test_delete_removes_everything_and_tolerates_missing(provider: QemuProvider) -> None:
    name = VMName.new("unit")
    provider.clone("linux-tiny", name)
    provider.delete(name)
    assert not provider.vm_dir(name).exists()
    provider.delete(name)  # a missing VM is not an error
    provider.stop(name)


def test_wait_ready_on_a_dead_vm_reports_console_and_qemu_output(provider: QemuProvider) -> None:
    name = VMName.new("unit")
    provider.clone("linux-tiny", name)
    provider._save(replace(provider.record(name), ssh_port=free_loopback_port(), qemu_pid=2**22 - 1, qemu_started=1.0))
    (provider.vm_dir(name) / "serial.log").write_bytes(b"[    0.000000] Linux version 6.1\r\nKernel panic - not syncing\r\n")
    (provider.vm_dir(name) / "qemu.log").write_text("qemu-system-x86_64: terminating on signal 9\n")
    with pytest.raises(BootTimeout) as caught:
        provider.wait_ready(name, timeout_s=30)
    error = caught.value
    assert "QEMU died" in error.message
    assert "Kernel panic - not syncing" in error.detail and "terminating on signal 9" in error.detail


def test_wait_ready_before_start_is_a_usage_error(provider: QemuProvider) -> None:
    name = VMName.new("unit")
    provider.clone("linux-tiny", name)
    with pytest.raises(UsageError, match="never started"):
        provider.wait_ready(name, timeout_s=1)


def test_unknown_vm_is_a_usage_error(provider: QemuProvider) -> None:
    with pytest.raises(UsageError, match="no QEMU VM"):
        provider.record(VMName.new("unit"))
    assert provider.console_tail(VMName.new("unit")) == "(no serial console output)"


def test_record_round_trips_through_json(tmp_path: Path) -> None:
    record = VMRecord(name="hns-a-1-b", image="linux-tiny", image_hash="h", image_dir="/d", owner_pid=1,
                      created="now", options={"cpus": 1, "memory_mb": 512, "capture_traffic": False, "pcap_path": None})
    assert VMRecord(**json.loads(json.dumps(record.__dict__))) == record
    assert record.vm_options() == VMOptions(cpus=1, memory_mb=512)
