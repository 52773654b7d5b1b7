"""Which QEMU accelerator actually runs guests on this host, decided by a probe, never assumed.

``/dev/kvm`` can exist and still hang every guest (nested virtualisation gone wrong). It can also
fail half-way: on one host here a real-mode boot sector ran under KVM while every Linux kernel
hung the moment it left real mode. So KVM has to pass two probes: a 512-byte boot sector that
writes a marker to the first serial port (cheap, rules out a KVM that runs nothing), then the
guest's own kernel with an early serial console, which must print its ``Linux version`` banner
(proves protected and long mode work). Otherwise TCG (software emulation). The verdict is cached
per host in the state directory, keyed by probe version, QEMU version and host kernel release, so
the probe runs once per host upgrade. ``HARNESS_ACCEL=kvm|tcg`` overrides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from harness.config import HostPaths
from harness.errors import InfrastructureError, UsageError
from harness.host.tools import require_tool
from harness.waiting import attempts

AccelName = Literal["kvm", "tcg"]
ACCEL_ENV = "HARNESS_ACCEL"
PROBE_MARKER = b"HARNESS-ACCEL-PROBE-OK"
PROBE_DEADLINE_S = 3.0
KERNEL_MARKER = b"Linux version"
# A kernel under working KVM prints its banner in well under a second; 10 s leaves room for a
# loaded host without letting a hung KVM cost more than that once per host.
KERNEL_PROBE_DEADLINE_S = 10.0
# Bumped when the probe learns to catch a new way of failing, so older verdicts are not trusted.
PROBE_VERSION = 2
KVM_DEVICE = Path("/dev/kvm")

# Measured on the 2-core development host: a Debian 12 guest with 2 vCPUs reached its SSH banner
# about as fast under multi-threaded TCG as single-threaded, and faster with -cpu max than the
# default qemu64 model (see vm_images/linux/README.md for the figures).
QEMU_ARGS: dict[AccelName, tuple[str, ...]] = {
    "kvm": ("-accel", "kvm", "-cpu", "host"),
    "tcg": ("-accel", "tcg,thread=multi", "-cpu", "max"),
}


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator to use and how we know it works."""

    name: AccelName
    source: str  # "probe", "cache" or "env"
    probe_seconds: float | None = None
    qemu_version: str = ""
    kernel_release: str = ""
    note: str = ""  # what the probe saw, for reports: "kvm: no marker within 3.0s; tcg: ..."

    @property
    def qemu_args(self) -> tuple[str, ...]:
        return QEMU_ARGS[self.name]


def probe_boot_sector(marker: bytes = PROBE_MARKER) -> bytes:
    """A BIOS boot sector: print ``marker`` + newline on COM1 (port 0x3f8), then halt forever.

    Hand-assembled 16-bit code, loaded by the BIOS at 0000:7c00::

        xor ax,ax / mov ds,ax / mov si,msg / mov dx,0x3f8 / cld
        next: lodsb / test al,al / jz halt / out dx,al / jmp next
        halt: cli / hlt / jmp halt
    """
    code = bytearray(b"\x31\xc0\x8e\xd8")  # xor ax,ax ; mov ds,ax
    si_operand = len(code) + 1
    code += b"\xbe\x00\x00"  # mov si, <patched below>
    code += b"\xba\xf8\x03\xfc"  # mov dx,0x3f8 ; cld
    next_char = len(code)
    code += b"\xac\x84\xc0\x74\x03\xee"  # lodsb ; test al,al ; jz +3 ; out dx,al
    code += bytes([0xEB, (next_char - (len(code) + 2)) & 0xFF])  # jmp next
    halt = len(code)
    code += b"\xfa\xf4"  # cli ; hlt
    code += bytes([0xEB, (halt - (len(code) + 2)) & 0xFF])  # jmp halt
    code[si_operand:si_operand + 2] = (0x7C00 + len(code)).to_bytes(2, "little")
    code += marker + b"\n\0"
    if len(code) > 510:
        raise ValueError("probe marker too long for a boot sector")
    return bytes(code).ljust(510, b"\0") + b"\x55\xaa"


@dataclass(frozen=True)
class ProbeResult:
    works: bool
    seconds: float
    stderr: str


@dataclass(frozen=True)
class ProbeGuest:
    """What a probe boots and the console text that proves it ran."""

    marker: bytes
    memory_mb: int
    floppy: bytes | None = None  # a disk image to boot from, attached as a floppy
    boot_args: tuple[str, ...] = ()

    @classmethod
    def boot_sector(cls) -> ProbeGuest:
        return cls(PROBE_MARKER, 16, floppy=probe_boot_sector())

    @classmethod
    def kernel(cls, kernel: Path) -> ProbeGuest:
        # No disk, no initrd: the kernel panics after its banner and -no-reboot ends QEMU.
        cmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1"
        return cls(KERNEL_MARKER, 256, boot_args=("-kernel", str(kernel), "-append", cmdline))


def run_probe(qemu: str, accel: AccelName, deadline_s: float = PROBE_DEADLINE_S,
              guest: ProbeGuest | None = None) -> ProbeResult:
    """Boot ``guest`` (the boot sector by default) under ``accel``; it works if its marker reaches
    the serial file in time."""
    guest = guest or ProbeGuest.boot_sector()
    with tempfile.TemporaryDirectory(prefix="harness-accel-") as tmp:
        serial = Path(tmp, "serial.out")
        serial.touch()
        argv = [qemu, *QEMU_ARGS[accel], "-nodefaults", "-display", "none", "-no-reboot",
                "-m", str(guest.memory_mb), *guest.boot_args, "-serial", f"file:{serial}"]
        if guest.floppy is not None:
            disk = Path(tmp, "probe.img")
            disk.write_bytes(guest.floppy)
            argv += ["-drive", f"file={disk},format=raw,if=floppy"]
        started = time.monotonic()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, start_new_session=True)
        try:
            works = False
            for _ in attempts(deadline_s, 0.05):
                if process.poll() is not None:
                    break
                if guest.marker in serial.read_bytes():
                    works = True
                    break
            elapsed = time.monotonic() - started
        finally:
            process.kill()
            _, stderr = process.communicate(timeout=10)
    return ProbeResult(works=works, seconds=round(elapsed, 2), stderr=stderr.decode(errors="replace").strip())


def qemu_version(qemu: str) -> str:
    output = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    match = re.search(r"version (\S+)", output)
    return match.group(1) if match else "unknown"


def cache_file(paths: HostPaths, version: str, kernel: str) -> Path:
    key = re.sub(r"[^0-9A-Za-z.+_-]", "_", f"probe-v{PROBE_VERSION}-qemu-{version}-kernel-{kernel}")
    return paths.state / "accel" / f"{key}.json"


def kvm_usable(device: Path = KVM_DEVICE) -> bool:
    return device.exists() and os.access(device, os.R_OK | os.W_OK)


def choose_accel(paths: HostPaths, guest_kernel: Path,
                 environ: Mapping[str, str] | None = None) -> AccelChoice:
    """The accelerator for this host: the override, else the cached verdict, else a fresh probe.

    ``guest_kernel`` is the kernel the VMs boot: KVM is trusted only once it has run it."""
    env = os.environ if environ is None else environ
    forced = env.get(ACCEL_ENV, "").strip().lower()
    if forced:
        if forced not in QEMU_ARGS:
            raise UsageError(f"{ACCEL_ENV}={forced!r} is not an accelerator",
                             hint=f"use {ACCEL_ENV}=kvm or {ACCEL_ENV}=tcg, or unset it to probe")
        return AccelChoice(name=forced, source="env")  # type: ignore[arg-type]
    qemu = require_tool("qemu-system-x86_64", "boot Linux guests")
    version, kernel = qemu_version(qemu), os.uname().release
    cached = cache_file(paths, version, kernel)
    try:
        data = json.loads(cached.read_text())
        return AccelChoice(**{**data, "source": "cache"})
    except (OSError, ValueError, TypeError):
        pass
    choice = probe_host(qemu, version, kernel, guest_kernel)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(choice), indent=2) + "\n")
    partial.replace(cached)  # concurrent probers agree; last rename wins harmlessly
    return choice


def probe_kvm(qemu: str, guest_kernel: Path) -> tuple[ProbeResult | None, str]:
    """KVM's probes in order of cost; the first that fails ends it. Returns the last result (None
    when KVM was not tried) and what was seen, for the verdict's note."""
    if not kvm_usable():
        return None, f"kvm: {KVM_DEVICE} missing or not accessible"
    sector = run_probe(qemu, "kvm")
    if not sector.works:
        return sector, "kvm: " + _failed_note("boot sector", sector)
    booted = run_probe(qemu, "kvm", KERNEL_PROBE_DEADLINE_S, ProbeGuest.kernel(guest_kernel))
    if not booted.works:
        return booted, f"kvm: boot sector ran after {sector.seconds}s but the " + _failed_note("guest kernel", booted)
    return booted, f"kvm: boot sector after {sector.seconds}s, guest kernel banner after {booted.seconds}s"


def _failed_note(what: str, result: ProbeResult) -> str:
    stderr = f" ({result.stderr.splitlines()[0]})" if result.stderr else ""
    return f"{what} printed no marker within {result.seconds}s{stderr}"


def probe_host(qemu: str, version: str, kernel: str, guest_kernel: Path) -> AccelChoice:
    kvm, note = probe_kvm(qemu, guest_kernel)
    if kvm is not None and kvm.works:
        return AccelChoice("kvm", "probe", kvm.seconds, version, kernel, note)
    notes = [note]
    tcg = run_probe(qemu, "tcg", deadline_s=PROBE_DEADLINE_S * 5)
    if not tcg.works:
        raise InfrastructureError(
            "QEMU cannot boot even a 512-byte probe under software emulation (TCG)",
            hint="check that qemu-system-x86 and seabios are installed and work: "
                 "qemu-system-x86_64 -accel tcg -nographic",
            detail=f"qemu stderr: {tcg.stderr or '(empty)'}",
        )
    notes.append(f"tcg: marker after {tcg.seconds}s")
    return AccelChoice("tcg", "probe", tcg.seconds, version, kernel, "; ".join(notes))
