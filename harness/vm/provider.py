"""The provider contract, shaped after tart's lifecycle: clone -> start -> ready -> stop -> delete.

A provider turns a named base image into uniquely named, throw-away VMs and back into nothing.
Providers: ``qemu`` (Linux guests, runs here), ``tart`` (macOS guests on Apple Silicon),
``orchard`` (fleets of Macs). Everything above this layer (fixtures, the suite) speaks only this
protocol plus SSH, so a Linux QEMU guest and a macOS tart guest are driven by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from harness.host.run_label import VMName
from harness.host.sizing import GUEST_CPUS, GUEST_MEMORY_MB
from harness.ssh.endpoint import SSHEndpoint

VMState = Literal["stopped", "running", "suspended", "unknown"]


@dataclass(frozen=True)
class VMInfo:
    """One line of ``list``: what a provider knows about a VM without talking to it."""

    name: str
    provider: str
    state: VMState
    owner_pid: int | None = None  # None for VMs that are not ours


@dataclass(frozen=True)
class VMOptions:
    """Hardware of one VM; providers map what they can (tart: cpu/memory via ``tart set``)."""

    cpus: int = GUEST_CPUS
    memory_mb: int = GUEST_MEMORY_MB
    # Record every frame the guest sends (pcap) so egress checks can prove it stayed offline.
    capture_traffic: bool = False
    # Where the capture goes; None = the provider's per-VM directory (gone after delete).
    pcap_path: Path | None = None
    # Start from a saved running machine where the provider can (qemu: harness.vm.qemu.warm; tart:
    # suspend/resume); a provider that cannot, or a restore that fails, boots cold instead.
    warm: bool = False
    # Leave the guest's network open (``harness shell --online-for-debugging``). Never set by the
    # suite: every check assumes the network is cut.
    online: bool = False


@dataclass(frozen=True)
class StartMode:
    """How a VM actually started, for the journal and the report."""

    used: Literal["warm", "cold"]
    requested: bool
    detail: str = ""

    @property
    def label(self) -> str:
        if self.used == "warm":
            return "warm"
        return f"cold (warm start failed: {self.detail})" if self.requested else "cold"


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do beyond a VM's life cycle, declared instead of probed."""

    traffic_capture: bool = False  # traffic_pcap() names a capture of every frame the guest sent
    warm_start: bool = False  # start_mode() can report a start from a saved machine
    foreign_vms: bool = False  # foreign_running_count() sees VMs outside the harness taking slots


COLD_ONLY = StartMode("cold", requested=False)


@runtime_checkable
class Provider(Protocol):
    """A source of clean, disposable VMs. Every method has a deadline; none blocks forever."""

    name: str
    capabilities: Capabilities

    def images(self) -> list[str]:
        """Names of the base images this provider can clone."""
        ...

    def clone(self, image: str, name: VMName, options: VMOptions | None = None) -> None:
        """Make VM ``name`` from ``image``; refuses to overwrite an existing VM."""
        ...

    def start(self, name: VMName) -> None:
        """Boot the VM detached; returns once the hypervisor runs (not when the guest is ready)."""
        ...

    def wait_ready(self, name: VMName, timeout_s: float) -> SSHEndpoint:
        """Block until SSH answers; raise BootTimeout with the console tail otherwise."""
        ...

    def stop(self, name: VMName, timeout_s: float = 30.0) -> None:
        """Stop the VM (graceful, then forced after the timeout); a stopped VM is not an error."""
        ...

    def delete(self, name: VMName) -> None:
        """Remove the VM and its disk; a missing VM is not an error."""
        ...

    def list(self) -> list[VMInfo]:
        """Every VM this provider can see, ours (parsable names) and others."""
        ...

    def console_tail(self, name: VMName, lines: int = 60) -> str:
        """The last lines of the guest's console/serial log, for error messages and reports."""
        ...

    def traffic_pcap(self, name: VMName | str) -> Path | None:
        """The capture of the guest's traffic, when asked for and ``traffic_capture``; else None."""
        ...

    def start_mode(self, name: VMName | str) -> StartMode:
        """How the VM started (warm or cold, and why); cold for a provider without warm starts."""
        ...

    def foreign_running_count(self) -> int:
        """Running VMs the harness did not start that take a host slot (0 unless ``foreign_vms``)."""
        ...

    def image_digest(self, image: str) -> str | None:
        """Which build of ``image`` a clone would boot now, or None when the provider cannot tell."""
        ...
