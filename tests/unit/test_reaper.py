"""The reaper and `harness gc` against a stand-in provider (real processes, real directories)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from fake_provider import FAKE_IMAGE, FakeProvider, wait_for

from harness import cli
from harness.config import HostPaths
from harness.host.reaper import ReapPolicy, find_leftovers, reap
from harness.host.run_label import Lease, LeaseBook, VMName

# An owner process: makes one VM (lease first, as the Machine does), reports its name, waits.
OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from fake_provider import FAKE_IMAGE, FakeProvider
    from harness.host.run_label import Lease, LeaseBook, VMName
    state = Path(sys.argv[1])
    provider = FakeProvider(state / "vms")
    name = VMName.new("unittest")
    LeaseBook(state / "leases").write(Lease.for_this_process(str(name), "fake", FAKE_IMAGE))
    provider.clone(FAKE_IMAGE, name)
    provider.start(name)
    print(name, flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def paths(tmp_path: Path) -> HostPaths:
    return HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")


@pytest.fixture
def provider(paths: HostPaths) -> FakeProvider:
    return FakeProvider(paths.vms)


def _vm_of_killed_owner(paths: HostPaths) -> tuple[str, int]:
    """A VM whose owner process was SIGKILLed; returns its name and its 'hypervisor' pid."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(paths.state), str(Path(__file__).parent)],
        stdout=subprocess.PIPE, text=True,
    )
    assert owner.stdout is not None
    name = owner.stdout.readline().strip()
    assert VMName.parse(name), f"owner printed {name!r}"
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait(timeout=10)
    owner.stdout.close()
    hypervisor = int((paths.vms / name / "qemu.pid").read_text())
    assert psutil.pid_exists(hypervisor)
    return name, hypervisor


def _own_vm(provider: FakeProvider, paths: HostPaths, **lease_changes: object) -> VMName:
    name = VMName.new("unittest")
    lease = replace(Lease.for_this_process(str(name), "fake", FAKE_IMAGE), **lease_changes)
    LeaseBook(paths.state / "leases").write(lease)
    provider.clone(FAKE_IMAGE, name)
    provider.start(name)
    return name


def test_vm_of_a_killed_owner_is_stopped_and_deleted(paths: HostPaths,
                                                     provider: FakeProvider) -> None:
    name, hypervisor = _vm_of_killed_owner(paths)
    said: list[str] = []

    outcomes = reap([provider], paths, say=said.append)

    assert [(o.leftover.name, o.removed) for o in outcomes] == [(name, True)]
    assert "is dead" in outcomes[0].leftover.reason
    assert wait_for(lambda: not psutil.pid_exists(hypervisor)), "hypervisor still runs"
    assert not (paths.vms / name).exists()
    assert LeaseBook(paths.state / "leases").get(name) is None
    assert said == [f"removed {name} (fake): {outcomes[0].leftover.reason}"]


def test_vms_of_live_owners_and_foreign_vms_are_left_alone(paths: HostPaths,
                                                          provider: FakeProvider) -> None:
    mine = _own_vm(provider, paths)
    (paths.vms / "somebody-elses-vm").mkdir()
    try:
        assert find_leftovers([provider], paths) == []
        assert reap([provider], paths) == []
        assert (paths.vms / str(mine) / "overlay.qcow2").exists()
        assert (paths.vms / "somebody-elses-vm").exists()
    finally:
        provider.stop(mine)


def test_a_recycled_owner_pid_does_not_protect_a_vm(paths: HostPaths,
                                                   provider: FakeProvider) -> None:
    # The lease says the owner started long ago; the live process with that pid (us) did not.
    name = _own_vm(provider, paths, owner_started_at=1_000_000.0)
    [leftover] = find_leftovers([provider], paths)
    assert leftover.name == str(name) and "recycled" in leftover.reason
    reap([provider], paths)
    assert not (paths.vms / str(name)).exists()


def test_kept_vms_survive_until_asked_for(paths: HostPaths, provider: FakeProvider) -> None:
    name, hypervisor = _vm_of_killed_owner(paths)
    LeaseBook(paths.state / "leases").mark_kept(name, "ssh ...")

    assert reap([provider], paths) == []
    assert psutil.pid_exists(hypervisor)

    [outcome] = reap([provider], paths, ReapPolicy(include_kept=True))
    assert outcome.removed and outcome.leftover.reason == "kept VM, owner gone"
    assert wait_for(lambda: not psutil.pid_exists(hypervisor))


def test_by_name_removes_exactly_that_vm_even_with_a_live_owner(
    paths: HostPaths, provider: FakeProvider
) -> None:
    first, second = _own_vm(provider, paths), _own_vm(provider, paths)
    try:
        [outcome] = reap([provider], paths, ReapPolicy(names=frozenset({str(first)})))
        assert outcome.leftover.name == str(first) and outcome.removed
        assert not (paths.vms / str(first)).exists() and (paths.vms / str(second)).exists()
    finally:
        provider.stop(second)


def test_dry_run_removes_nothing(paths: HostPaths, provider: FakeProvider) -> None:
    name, hypervisor = _vm_of_killed_owner(paths)
    said: list[str] = []
    [outcome] = reap([provider], paths, dry_run=True, say=said.append)
    assert not outcome.removed and said[0].startswith(f"would remove {name}")
    assert psutil.pid_exists(hypervisor) and (paths.vms / name).exists()
    reap([provider], paths)


def test_an_orphaned_directory_and_its_hypervisor_are_removed(paths: HostPaths) -> None:
    name = VMName.new("unittest", owner_pid=_dead_pid())
    directory = paths.vms / str(name)
    directory.mkdir(parents=True)
    (directory / "overlay.qcow2").write_bytes(b"x")
    # A process whose command line names qemu and this directory, like a real hypervisor's.
    hypervisor = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "qemu-system-x86_64", str(directory)]
    )
    (directory / "qemu.pid").write_text(str(hypervisor.pid))

    nothing_listed = FakeProvider(paths.state / "elsewhere")
    [outcome] = reap([nothing_listed], paths)

    assert outcome.removed and outcome.leftover.reason.startswith("orphaned directory")
    # (the reaper itself waited for it, so Popen cannot tell the signal any more)
    assert wait_for(lambda: hypervisor.poll() is not None), "hypervisor still runs"
    assert not directory.exists()


def test_stale_leases_of_dead_owners_are_forgotten(paths: HostPaths,
                                                   provider: FakeProvider) -> None:
    book = LeaseBook(paths.state / "leases")
    gone = VMName.new("unittest", owner_pid=_dead_pid())
    book.write(replace(Lease.for_this_process(str(gone), "fake", FAKE_IMAGE),
                       owner_pid=gone.owner_pid))
    live = VMName.new("unittest")
    book.write(Lease.for_this_process(str(live), "fake", FAKE_IMAGE))  # being cloned right now
    reap([provider], paths)
    assert [lease.name for lease in book.all()] == [str(live)]


def test_gc_command(paths: HostPaths, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HARNESS_STATE", str(paths.state))
    monkeypatch.setattr("harness.commands.gc.available_providers", lambda paths: [provider])
    name, _ = _vm_of_killed_owner(paths)

    assert cli.main(["gc", "--dry-run"]) == 0
    assert f"would remove {name}" in capsys.readouterr().out and (paths.vms / name).exists()

    assert cli.main(["gc"]) == 0
    assert f"removed {name}" in capsys.readouterr().out and not (paths.vms / name).exists()

    assert cli.main(["gc"]) == 0
    assert "nothing to remove" in capsys.readouterr().out

    assert cli.main(["gc", "--name", "hns-run-1-abc"]) == 1
    assert "no VM named hns-run-1-abc" in capsys.readouterr().out

    assert cli.main(["gc", "--name", "my-precious-vm"]) == 2
    assert "not a harness VM name" in capsys.readouterr().err


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    time.sleep(0.05)
    return process.pid
