"""Accelerator choice: the probe program, the override, the per-host cache, the fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.errors import InfrastructureError, UsageError
from harness.vm import accel
from harness.vm.accel import (
    PROBE_MARKER,
    AccelChoice,
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


def _probes(monkeypatch: pytest.MonkeyPatch, record: list[str], works: dict[str, bool]) -> None:
    def run_probe(qemu: str, name: str, deadline_s: float = 3.0) -> ProbeResult:
        record.append(name)
        return ProbeResult(works=works[name], seconds=0.3 if works[name] else deadline_s, stderr="")

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
    choice = choose_accel(paths, {"HARNESS_ACCEL": "tcg"})
    assert (choice.name, choice.source) == ("tcg", "env")
    assert choice.qemu_args[:2] == ("-accel", "tcg,thread=multi")
    assert choose_accel(paths, {"HARNESS_ACCEL": "KVM"}).qemu_args[:2] == ("-accel", "kvm")
    assert fake_qemu == []


def test_bad_override_is_a_usage_error(paths: HostPaths) -> None:
    with pytest.raises(UsageError) as caught:
        choose_accel(paths, {"HARNESS_ACCEL": "hvf"})
    assert "HARNESS_ACCEL=kvm" in caught.value.hint


def test_hanging_kvm_falls_back_to_tcg_and_is_cached(paths: HostPaths, fake_qemu: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": False, "tcg": True})
    first = choose_accel(paths, {})
    assert (first.name, first.source) == ("tcg", "probe") and fake_qemu == ["kvm", "tcg"]
    assert "kvm: no marker" in first.note
    cached = cache_file(paths, "7.2.22", first.kernel_release)
    assert json.loads(cached.read_text())["name"] == "tcg"

    second = choose_accel(paths, {})
    assert (second.name, second.source) == ("tcg", "cache") and fake_qemu == ["kvm", "tcg"]


def test_cache_is_keyed_by_qemu_version(paths: HostPaths, fake_qemu: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": True, "tcg": True})
    assert choose_accel(paths, {}).name == "kvm"
    monkeypatch.setattr(accel, "qemu_version", lambda qemu: "8.0.0")
    assert choose_accel(paths, {}).source == "probe"  # an upgraded QEMU is probed again
    assert fake_qemu == ["kvm", "kvm"]


def test_unreadable_cache_means_probing_again(paths: HostPaths, fake_qemu: list[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": False, "tcg": True})
    target = cache_file(paths, "7.2.22", accel.os.uname().release)
    target.parent.mkdir(parents=True)
    target.write_text("{torn write")
    assert choose_accel(paths, {}).source == "probe"


def test_no_kvm_device_means_no_kvm_probe(paths: HostPaths, fake_qemu: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": True, "tcg": True})
    monkeypatch.setattr(accel, "kvm_usable", lambda device=accel.KVM_DEVICE: False)
    choice = choose_accel(paths, {})
    assert choice.name == "tcg" and fake_qemu == ["tcg"] and "missing or not accessible" in choice.note


def test_qemu_that_cannot_boot_anything_is_an_infrastructure_error(paths: HostPaths, fake_qemu: list[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _probes(monkeypatch, fake_qemu, {"kvm": False, "tcg": False})
    with pytest.raises(InfrastructureError, match="cannot boot even a 512-byte probe"):
        choose_accel(paths, {})
    assert not cache_file(paths, "7.2.22", accel.os.uname().release).exists()


def test_choice_round_trips_through_the_cache_format() -> None:
    choice = AccelChoice("tcg", "probe", 0.2, "7.2.22", "6.1.0", "kvm: no marker within 3.0s")
    assert AccelChoice(**{**json.loads(json.dumps(choice.__dict__)), "source": "cache"}).name == "tcg"
