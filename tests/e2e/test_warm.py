"""Warm clones of the real Debian image: each one its own machine (files, host key, machine id,
clock, RNG), nothing carried from one clone to the next, a damaged snapshot ending in a cold boot,
and the run's journal and sign-off saying which start each VM had.

The first test to run builds the image's snapshot (one cold boot) unless a run before did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.host.run_label import VMName
from harness.host.slots import SlotPool
from harness.journal import read_journal
from harness.plugins.vm import DEFAULT_IMAGE, VMEnvironment, VMFactory
from harness.ssh import SSHTransport
from harness.vm.machine import Machine
from harness.vm.provider import VMOptions
from harness.vm.qemu.provider import QemuProvider
from harness.vm.qemu.snapshots import Snapshot, SnapshotStore
from harness.vm.qemu.warm import WarmStarts, build_snapshot
from harness.vm.warm.plan import WarmPlan, WarmStartWarning, start_mode

pytestmark = pytest.mark.vm

PATHS = HostPaths.from_env()
BOOT_TIMEOUT_S = 900.0  # a cold boot under TCG on a crowded 2-core host
CLOCK_TOLERANCE_S = 2.0


@pytest.fixture
def warm_vms(vm_environment: VMEnvironment) -> Iterator[VMFactory]:
    """Warm VMs whatever --warm/--cold says; all removed at teardown."""
    factory = VMFactory(replace(vm_environment, warm=True), DEFAULT_IMAGE)
    yield factory
    factory.close_all(failed=False, interrupted=False)


def _plan(vm: Machine) -> WarmPlan:
    plan = WarmPlan.load(vm.provider.vm_dir(vm.name))  # type: ignore[attr-defined]
    assert plan is not None and plan.role == "clone", f"{vm.name} is not a warm clone: {plan}"
    return plan


def test_two_warm_clones_are_independent_machines(warm_vms: VMFactory) -> None:
    a, b = warm_vms(), warm_vms()
    for vm in (a, b):
        assert start_mode(vm.provider, vm.name).used == "warm", start_mode(vm.provider, vm.name).label

    # Files: each clone writes on its own overlay.
    a.run("echo a > /home/tester/written-in-a && sudo -n sh -c 'echo a > /etc/written-in-a' && sync", check=True)
    assert a.is_file("/home/tester/written-in-a") and a.is_file("/etc/written-in-a")
    assert not b.file_exists("/home/tester/written-in-a") and not b.file_exists("/etc/written-in-a")

    # Machine ids: fresh per clone, the ones the host handed over.
    ids = [vm.read_text("/etc/machine-id").strip() for vm in (a, b)]
    assert ids[0] != ids[1] and ids == [_plan(vm).machine_id for vm in (a, b)]

    # Host keys: one ed25519 key per clone, made by the host and pinned before the first login.
    for vm in (a, b):
        public = " ".join(vm.read_text("/etc/ssh/ssh_host_ed25519_key.pub").split()[:2])
        assert public == _plan(vm).host_key
        assert public in (vm.artifacts / "known_hosts").read_text()
        keys = vm.run("ls /etc/ssh/ | grep '^ssh_host_'", check=True).stdout.split()
        assert keys == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"], "the template's key is gone"
        assert vm.sudo("stat -c %a /etc/ssh/ssh_host_ed25519_key", check=True).stdout.strip() == "600"
    assert _plan(a).host_key != _plan(b).host_key

    # Clock: set from the host's as the guest resumed.
    for vm in (a, b):
        before = time.time()
        guest = float(vm.run("date +%s.%N", check=True).stdout)
        after = time.time()
        assert before - CLOCK_TOLERANCE_S <= guest <= after + CLOCK_TOLERANCE_S, (before, guest, after)

    # Entropy: vmgenid told each kernel it was forked, so the RNGs were reseeded.
    for vm in (a, b):
        assert "crng reseeded due to virtual machine fork" in vm.sudo("dmesg", check=True).stdout
    assert a.read_text("/proc/sys/kernel/random/uuid") != b.read_text("/proc/sys/kernel/random/uuid")

    # The agent did its job and left: no process, no file.
    for vm in (a, b):
        assert not vm.run("systemctl is-active --quiet harness-warm-agent").ok
        assert not vm.file_exists("/run/harness-warm/agent.sh")


def test_a_later_clone_sees_nothing_of_an_earlier_one(warm_vms: VMFactory) -> None:
    first = warm_vms()
    first.run("echo left > /home/tester/left-behind && sync", check=True)
    first_id = first.read_text("/etc/machine-id")
    first.close()
    second = warm_vms()
    assert start_mode(second.provider, second.name).used == "warm"
    assert not second.file_exists("/home/tester/left-behind")
    assert second.read_text("/etc/machine-id") != first_id


# ---------------------------------------------------------------- damaged snapshots


@pytest.fixture
def private_snapshot(tmp_path: Path) -> Iterator[tuple[QemuProvider, Snapshot]]:
    """A QEMU provider whose snapshots live in ``tmp_path``, holding a copy of the real snapshot
    that the test may damage without hurting anyone else's warm starts."""
    provider = QemuProvider(PATHS)
    built = provider.store.ensure(DEFAULT_IMAGE)
    options = VMOptions()
    key = provider.warm.snapshot_key(provider, built, options)
    with SlotPool(PATHS.slots, 2).acquire(timeout_s=BOOT_TIMEOUT_S * 2, label="test_warm snapshot"):
        real = provider.warm.store.ensure(built, key, lambda work: build_snapshot(provider, DEFAULT_IMAGE, options, work))
    copy = tmp_path / "warm" / key.digest
    shutil.copytree(real.directory, copy)
    for path in copy.iterdir():
        path.chmod(0o644)
    provider.warm = WarmStarts(SnapshotStore(root=lambda _built: tmp_path / "warm"))
    loaded = Snapshot.load(copy)
    assert loaded is not None
    yield provider, loaded


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


@pytest.mark.parametrize("damage", ["header", "memory"])
def test_a_damaged_state_file_ends_in_a_cold_boot(private_snapshot: tuple[QemuProvider, Snapshot],
                                                  damage: str, tmp_path: Path) -> None:
    provider, snapshot = private_snapshot
    size = snapshot.state.stat().st_size
    if damage == "header":  # QEMU itself refuses the stream
        _overwrite(snapshot.state, 0, b"\xff" * 64)
    else:  # QEMU may load it; the checksum must not let it through
        _overwrite(snapshot.state, size // 2, os.urandom(4096))
    assert snapshot.state.stat().st_size == size

    name = VMName.new("warme2e")
    with SlotPool(PATHS.slots, 2).acquire(timeout_s=BOOT_TIMEOUT_S * 2, label=f"test_warm {name}"):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                provider.clone(DEFAULT_IMAGE, name, VMOptions(warm=True))
                started = time.monotonic()
                provider.start(name)
            assert time.monotonic() - started < 120, "the fallback decision must not wait on long timeouts"
            assert [w for w in caught if issubclass(w.category, WarmStartWarning)], "no warning about the cold boot"
            mode = provider.start_mode(name)
            assert mode.used == "cold" and mode.requested and mode.detail, mode
            endpoint = provider.wait_ready(name, BOOT_TIMEOUT_S)
            with SSHTransport.connect(endpoint, known_hosts=tmp_path / "known_hosts",
                                      log_path=tmp_path / "commands.log") as ssh:
                assert ssh.run("systemctl is-system-running --wait || true", timeout=300).stdout.strip() in (
                    "running", "degraded")
            assert not snapshot.directory.exists(), "a snapshot that failed to restore stays in use"
        finally:
            provider.delete(name)
    assert not provider.vm_dir(name).exists()


# ---------------------------------------------------------------- what the report says

INNER_TEST = textwrap.dedent(
    """
    def test_uses_a_vm(vm):
        assert vm.run("true").ok
    """
)


def test_the_run_records_which_start_each_vm_had(tmp_path: Path) -> None:
    run_id = "warme2e" + uuid.uuid4().hex[:6]
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "--results-dir", str(results), "--testrunuid", run_id, "--warm", "test_inner.py"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=BOOT_TIMEOUT_S * 2,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    starts = [r["data"]["vm_start"] for r in read_journal(results) if r.get("kind") == "meta"
              and "vm_start" in r.get("data", {})]
    assert [s["used"] for s in starts] == ["warm"], starts
    signoff = next(results.rglob("signoff.md"), None) or next(results.rglob("*.md"), None)
    pages = [p.read_text() for p in results.rglob("*.html")] + ([signoff.read_text()] if signoff else [])
    assert any(f"vm start ({DEFAULT_IMAGE}): warm" in page for page in pages), "sign-off does not say"
    assert json.dumps(starts)  # plain data, readable by other tools
