"""The accelerator probe on this host's real QEMU: TCG must boot the probe sector, and the
cached verdict must agree with fresh KVM probes of the boot sector and of the guest's kernel."""

from __future__ import annotations

import pytest

from harness.config import HostPaths
from harness.host.tools import require_tool
from harness.images import image_store
from harness.vm.qemu.accel import (
    KERNEL_PROBE_DEADLINE_S,
    ProbeGuest,
    choose_accel,
    kvm_usable,
    run_probe,
)

pytestmark = pytest.mark.vm
PATHS = HostPaths.from_env()


def test_kvm_probe_verdict_matches_a_real_probe() -> None:
    qemu = require_tool("qemu-system-x86_64", "boot Linux guests")
    kernel = image_store(PATHS).ensure("linux-debian12").kernel
    tcg = run_probe(qemu, "tcg", deadline_s=15)
    assert tcg.works, f"TCG must boot the probe sector: {tcg.stderr}"
    choice = choose_accel(PATHS, kernel)
    if kvm_usable():
        sector = run_probe(qemu, "kvm")
        booted = run_probe(qemu, "kvm", KERNEL_PROBE_DEADLINE_S, ProbeGuest.kernel(kernel))
        assert choice.name == ("kvm" if sector.works and booted.works else "tcg"), choice.note
        print(f"kvm: boot sector {sector}, guest kernel {booted}; tcg {tcg.seconds}s; verdict {choice}")
    else:
        assert choice.name == "tcg"


def test_tcg_boots_the_guest_kernel() -> None:
    qemu = require_tool("qemu-system-x86_64", "boot Linux guests")
    kernel = image_store(PATHS).ensure("linux-debian12").kernel
    booted = run_probe(qemu, "tcg", 60, ProbeGuest.kernel(kernel))
    assert booted.works, f"the kernel banner never reached the console under TCG: {booted.stderr}"
