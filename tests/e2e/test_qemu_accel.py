"""The accelerator probe on this host's real QEMU: TCG must print the marker, and the cached
verdict must agree with a fresh KVM probe."""

from __future__ import annotations

import pytest

from harness.config import HostPaths
from harness.vm.accel import choose_accel, kvm_usable, run_probe
from harness.vm.host_tools import require_tool

pytestmark = pytest.mark.vm
PATHS = HostPaths.from_env()


def test_kvm_probe_verdict_matches_a_real_probe() -> None:
    qemu = require_tool("qemu-system-x86_64", "boot Linux guests")
    tcg = run_probe(qemu, "tcg", deadline_s=15)
    assert tcg.works, f"TCG must boot the probe sector: {tcg.stderr}"
    choice = choose_accel(PATHS)
    if kvm_usable():
        kvm = run_probe(qemu, "kvm")
        assert choice.name == ("kvm" if kvm.works else "tcg"), choice.note
        print(f"kvm probe: works={kvm.works} in {kvm.seconds}s; tcg probe {tcg.seconds}s; verdict {choice}")
