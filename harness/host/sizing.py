"""How big each guest is, from the host's cores and memory and how many VMs run at once.

Under software emulation every virtual CPU is a host thread that wants a core of its own: two
2-vCPU guests on a 2-core host spend their time taking the cores from each other, while two
1-vCPU guests each keep one. A release's install and server are mostly one process, so a single
guest keeps two vCPUs (its kernel and sshd work beside the installer) and guests that share the
host get the cores split between them. Memory is the profile-independent default unless the
host cannot give every guest that much with room left for itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

# What one guest gets when it has the host to itself: every VM's default hardware.
GUEST_CPUS = 2
GUEST_MEMORY_MB = 2048
MIN_MEMORY_MB = 1024
HOST_SHARE = 0.75  # of the host's memory, for all guests together


@dataclass(frozen=True)
class GuestSize:
    cpus: int
    memory_mb: int
    reason: str

    def describe(self) -> str:
        return f"{self.cpus} vCPU{'' if self.cpus == 1 else 's'}, {self.memory_mb} MB: {self.reason}"


def guest_size(vms_at_once: int, host_cores: int | None = None, host_memory_mb: int | None = None) -> GuestSize:
    """The size of each of ``vms_at_once`` guests running together on this host."""
    vms = max(1, vms_at_once)
    cores = host_cores or os.cpu_count() or 1
    memory = host_memory_mb or psutil.virtual_memory().total // (1 << 20)
    cpus = max(1, min(GUEST_CPUS, cores // vms))
    memory_mb = max(MIN_MEMORY_MB, min(GUEST_MEMORY_MB, int(memory * HOST_SHARE) // vms))
    together = "a VM alone" if vms == 1 else f"{vms} VMs at once"
    return GuestSize(cpus, memory_mb, f"{together} on {cores} host core{'' if cores == 1 else 's'}")
