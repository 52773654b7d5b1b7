"""One QEMU command line, built from a pure value (:class:`QemuLaunch`) so it is unit-testable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.vm.provider import VMOptions
from harness.vm.qemu.network import capture_args, network_args

# A guest kernel that panics reboots at once, which -no-reboot turns into QEMU exiting: the SSH
# connection then drops and the step fails in seconds, instead of waiting out its timeout
# against a frozen guest.
PANIC_EXITS = "panic=-1"


@dataclass(frozen=True)
class QemuLaunch:
    """Everything that goes on one QEMU command line; a pure value, so it is unit-testable."""

    name: str
    vm_dir: Path
    kernel: Path
    initrd: Path
    kernel_cmdline: str
    ssh_port: int
    accel_args: tuple[str, ...]
    options: VMOptions
    extra_args: tuple[str, ...] = ()  # warm starts: agent channel, vmgenid, -incoming

    @property
    def overlay(self) -> Path:
        return self.vm_dir / "overlay.qcow2"

    @property
    def serial_log(self) -> Path:
        return self.vm_dir / "serial.log"

    @property
    def pcap(self) -> Path | None:
        if not self.options.capture_traffic:
            return None
        return self.options.pcap_path or self.vm_dir / "traffic.pcap"


def option_path(path: Path) -> str:
    """A path inside a QEMU ``key=value,...`` option: a literal comma is written twice."""
    return str(path).replace(",", ",,")


def qemu_command(qemu: str, launch: QemuLaunch) -> list[str]:
    """The QEMU argv. Runs with cwd = the VM directory (the QMP socket path is relative to it)."""
    argv = [
        qemu, "-name", f"guest={launch.name}", *launch.accel_args,
        "-smp", str(launch.options.cpus), "-m", str(launch.options.memory_mb),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", f"file:{option_path(launch.serial_log)}",
        "-kernel", str(launch.kernel), "-initrd", str(launch.initrd),
        "-append", f"{launch.kernel_cmdline} {PANIC_EXITS}",
        # cache=unsafe: the overlay is thrown away, so flushes buy nothing but time.
        "-drive", f"file={option_path(launch.overlay)},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        *network_args(launch.ssh_port, launch.options.online),
        "-device", "virtio-rng-pci",
        "-chardev", "socket,id=qmp,path=qmp.sock,server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
    ]
    argv += launch.extra_args
    if launch.pcap is not None:
        argv += capture_args(option_path(launch.pcap))
    return argv
