"""Accelerator choice: the probe program, the override, the per-host cache, the fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.errors import InfrastructureError, UsageError
from harness.vm.qemu import accel
from harness.vm.qemu.accel import (
    KERNEL_MARKER,
    PROBE_MARKER,
    AccelChoice,
    ProbeGuest,
    ProbeResult,
    cache_file,
    choose_accel,
    probe_boot_sector,
)


@pytest.fixture
def paths(tmp_path: Path) -> HostPaths:
    return HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")


@pytest.fixture
def fake_qemu(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No real QEMU: a fixed version, and every probe recorded instead of run."""
    probes: list[str] = []
    monkeypatch.setattr(accel, "require_tool", lambda program, purpose: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(accel, "qemu_version", lambda qemu: "7.2.22")
    monkeypatch.setattr(accel, "kvm_usable", lambda device=accel.KVM_DEVICE: True)
    return probes


GUEST_KERNEL = Path("/images/debian/vmlinuz")


def _probes(monkeypatch: pytest.MonkeyPatch, record: list[str], works: dict[str, bool]) -> None:
    """Probes answer from ``works``, keyed "kvm", "tcg", or "kvm-kernel" for the guest kernel probe
    (which, unless named, works like the boot sector)."""
    def run_probe(qemu: str, name: str, deadline_s: float = 3.0, guest: ProbeGuest | None = None) -> ProbeResult:
        key = f"{name}-kernel" if guest is not None and guest.marker == KERNEL_MARKER else name
        record.append(key)
        ok = works.get(key, works[name])
        return ProbeResult(works=ok, seconds=0.3 if ok else deadline_s, stderr="")

    monkeypatch.setattr(accel, "run_probe", run_probe)


def test_boot_sector_is_bootable_and_points_at_its_marker() -> None:
    sector = probe_boot_sector()
    assert len(sector) == 512 and sector.endswith(b"\x55\xaa")
    message_at = sector.index(PROBE_MARKER)
    operand = int.from_bytes(sector[5:7], "little")  # mov si, imm16 follows xor ax,ax / mov ds,ax
    assert sector[4] == 0xBE and operand == 0x7C00 + message_at
    assert sector[message_at + len(PROBE_MARKER):].startswith(b"\n\0")


def test_boot_sector_rejects_an_oversized_marker() -> None:
    with pytest.raises(ValueError):
        probe_boot_sector(b"x" * 600)


def test_env_override_skips_the_probe(paths: HostPaths, fake_qemu: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": True, "tcg": True})
    choice = choose_accel(paths, GUEST_KERNEL, {"HARNESS_ACCEL": "tcg"})
    assert (choice.name, choice.source) == ("tcg", "env")
    assert choice.qemu_args[:2] == ("-accel", "tcg,thread=multi")
    assert choose_accel(paths, GUEST_KERNEL, {"HARNESS_ACCEL": "KVM"}).qemu_args[:2] == ("-accel", "kvm")
    assert fake_qemu == []


def test_bad_override_is_a_usage_error(paths: HostPaths) -> None:
    with pytest.raises(UsageError) as caught:
        choose_accel(paths, GUEST_KERNEL, {"HARNESS_ACCEL": "hvf"})
    assert "HARNESS_ACCEL=kvm" in caught.value.hint


def test_hanging_kvm_falls_back_to_tcg_and_is_cached(paths: HostPaths, fake_qemu: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": False, "tcg": True})
    first = choose_accel(paths, GUEST_KERNEL, {})
    assert (first.name, first.source) == ("tcg", "probe") and fake_qemu == ["kvm", "tcg"]
    assert "kvm: boot sector printed no marker" in first.note
    cached = cache_file(paths, "7.2.22", first.kernel_release)
    assert json.loads(cached.read_text())["name"] == "tcg"

    second = choose_accel(paths, GUEST_KERNEL, {})
    assert (second.name, second.source) == ("tcg", "cache") and fake_qemu == ["kvm", "tcg"]


def test_cache_is_keyed_by_qemu_version(paths: HostPaths, fake_qemu: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": True, "tcg": True})
    assert choose_accel(paths, GUEST_KERNEL, {}).name == "kvm"
    monkeypatch.setattr(accel, "qemu_version", lambda qemu: "8.0.0")
    assert choose_accel(paths, GUEST_KERNEL, {}).source == "probe"  # an upgraded QEMU is probed again
    assert fake_qemu == ["kvm", "kvm-kernel", "kvm", "kvm-kernel"]


def test_kvm_that_runs_a_boot_sector_but_hangs_the_kernel_means_tcg(
    paths: HostPaths, fake_qemu: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen on this project's CI host: real mode ran under KVM, every Linux kernel hung after it.
    _probes(monkeypatch, fake_qemu, {"kvm": True, "kvm-kernel": False, "tcg": True})
    choice = choose_accel(paths, GUEST_KERNEL, {})
    assert choice.name == "tcg" and fake_qemu == ["kvm", "kvm-kernel", "tcg"]
    assert "guest kernel printed no marker within 10.0s" in choice.note


def test_a_verdict_of_an_older_probe_is_not_trusted(paths: HostPaths) -> None:
    assert f"probe-v{accel.PROBE_VERSION}-" in cache_file(paths, "7.2.22", "6.1.0").name


def test_kernel_probe_boots_the_guest_kernel_with_an_early_console() -> None:
    guest = ProbeGuest.kernel(GUEST_KERNEL)
    assert guest.marker == b"Linux version"
    assert guest.boot_args[:2] == ("-kernel", str(GUEST_KERNEL)) and "earlyprintk=serial" in guest.boot_args[3]
    assert guest.floppy is None and ProbeGuest.boot_sector().floppy == probe_boot_sector()


def test_unreadable_cache_means_probing_again(paths: HostPaths, fake_qemu: list[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": False, "tcg": True})
    target = cache_file(paths, "7.2.22", accel.os.uname().release)
    target.parent.mkdir(parents=True)
    target.write_text("{torn write")
    assert choose_accel(paths, GUEST_KERNEL, {}).source == "probe"


def test_no_kvm_device_means_no_kvm_probe(paths: HostPaths, fake_qemu: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": True, "tcg": True})
    monkeypatch.setattr(accel, "kvm_usable", lambda device=accel.KVM_DEVICE: False)
    choice = choose_accel(paths, GUEST_KERNEL, {})
    assert choice.name == "tcg" and fake_qemu == ["tcg"] and "missing or not accessible" in choice.note


def test_qemu_that_cannot_boot_anything_is_an_infrastructure_error(paths: HostPaths, fake_qemu: list[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": False, "tcg": False})
    with pytest.raises(InfrastructureError, match="cannot boot even a 512-byte probe"):
        choose_accel(paths, GUEST_KERNEL, {})
    assert not cache_file(paths, "7.2.22", accel.os.uname().release).exists()


def test_choice_round_trips_through_the_cache_format() -> None:
    choice = AccelChoice("tcg", "probe", 0.2, "7.2.22", "6.1.0", "kvm: no marker within 3.0s")
    assert AccelChoice(**{**json.loads(json.dumps(choice.__dict__)), "source": "cache"}).name == "tcg"
