"""The Machine life cycle with a stand-in provider and a real local sshd (no VM)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import psutil
import pytest
from fake_provider import FAKE_IMAGE, FakeProvider, wait_for
from sshd_server import LocalSSHD, sshd_fixture  # noqa: F401 (fixture)

from harness.config import HostPaths
from harness.errors import BootTimeout, InfrastructureError, UsageError
from harness.host.interrupts import SigtermAsInterrupt, interrupts_deferred
from harness.host.reaper import ReapPolicy, reap
from harness.host.run_label import LeaseBook
from harness.host.slots import SlotPool
from harness.journal import Journal, PhaseRecord, read_journal
from harness.vm.machine import Machine, MachineSettings, parse_keep_policy


@pytest.fixture
def unguarded_sigterm() -> Iterator[None]:
    """Take the session's own SIGTERM guard (installed by the harness plugin) out of the way."""
    session_handler = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, session_handler)


@pytest.fixture
def paths(tmp_path: Path) -> HostPaths:
    return HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")


@pytest.fixture
def provider(paths: HostPaths, sshd: LocalSSHD) -> FakeProvider:
    return FakeProvider(paths.vms, endpoint=sshd.endpoint)


@pytest.fixture
def slots(paths: HostPaths) -> SlotPool:
    return SlotPool(paths.slots, 1, poll_s=0.05)


def _machine(provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path,
             said: list[str] | None = None, **settings: object) -> Machine:
    config = MachineSettings(image=FAKE_IMAGE, run_id="unit", artifacts_root=tmp_path / "art",
                             slot_timeout_s=2, **settings)  # type: ignore[arg-type]
    sink = said if said is not None else []
    return Machine(provider, config, slots=slots, paths=paths,
                   journal=Journal(tmp_path / "results"), say=sink.append)


def _gone(provider: FakeProvider, paths: HostPaths, machine: Machine, pid: int | None) -> None:
    assert not (paths.vms / str(machine.name)).exists()
    assert pid is None or wait_for(lambda: not psutil.pid_exists(pid))
    assert LeaseBook(paths.state / "leases").all() == []


def test_a_machine_boots_answers_and_is_gone_afterwards(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path
) -> None:
    with _machine(provider, paths, slots, tmp_path) as vm:
        pid = provider.pid(vm.name)
        assert vm.run("echo hello").stdout == "hello\n"
        vm.write_text(str(tmp_path / "note.txt"), "written\n")
        assert vm.read_text(str(tmp_path / "note.txt")) == "written\n"
        assert vm.file_exists(str(tmp_path / "note.txt")) and vm.is_file(str(tmp_path / "note.txt"))
        assert vm.is_dir(str(tmp_path)) and not vm.file_exists(str(tmp_path / "absent"))
        assert vm.command_exists("sh") and not vm.command_exists("no-such-command-here")
        assert slots.try_acquire() is None, "the VM holds the only slot"
        assert LeaseBook(paths.state / "leases").get(str(vm.name)) is not None
    _gone(provider, paths, vm, pid)
    assert [c.split()[0] for c in provider.calls] == [
        "clone", "start", "wait_ready", "stop", "delete"]
    with slots.acquire(1):
        pass
    assert {"vm_slot_wait", "vm_clone", "vm_start", "vm_ready", "vm_connect", "vm_boot",
            "vm_teardown"} <= {r["phase"] for r in read_journal(tmp_path / "results")}
    assert "$ echo hello" in (vm.artifacts / "commands.log").read_text()
    assert "fake console of" in (vm.artifacts / "console.log").read_text()


def test_keep_always_leaves_a_vm_with_login_and_removal_instructions(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path
) -> None:
    said: list[str] = []
    with _machine(provider, paths, slots, tmp_path, said, keep="always") as vm:
        pid = provider.pid(vm.name)
    assert vm.kept and psutil.pid_exists(pid or -1)
    assert f"log in:  ssh -p {provider.endpoint.port} -i " in said[0]  # type: ignore[union-attr]
    assert f"remove:  harness gc --name {vm.name}" in said[0]
    lease = LeaseBook(paths.state / "leases").get(str(vm.name))
    assert lease is not None and lease.kept and lease.ssh_command.startswith("ssh ")
    with slots.acquire(1):
        pass  # a kept VM does not hold its slot past its owner's use
    reap([provider], paths, ReapPolicy(names=frozenset({str(vm.name)})))
    _gone(provider, paths, vm, pid)


@pytest.mark.parametrize("fails", [True, False])
def test_keep_on_failure(provider: FakeProvider, paths: HostPaths, slots: SlotPool,
                         tmp_path: Path, fails: bool) -> None:
    machine = _machine(provider, paths, slots, tmp_path, keep="on-failure")
    with pytest.raises(AssertionError) if fails else nullcontext(), machine as vm:
        assert not fails
    assert vm.kept is fails
    assert (paths.vms / str(vm.name)).exists() is fails
    reap([provider], paths, ReapPolicy(names=frozenset({str(vm.name)})))


def test_a_boot_timeout_carries_the_console_and_leaves_nothing(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path
) -> None:
    provider.fail_ready = True
    machine = _machine(provider, paths, slots, tmp_path, keep="on-failure")
    with pytest.raises(BootTimeout) as caught:
        machine.start()
    assert "fake console of" in str(caught.value)
    # a VM that never answered is kept only as an investigation aid, with a note saying so
    assert machine.kept
    reap([provider], paths, ReapPolicy(names=frozenset({str(machine.name)})))
    provider.fail_ready = False


def test_a_failed_clone_is_never_kept(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path
) -> None:
    said: list[str] = []
    settings = MachineSettings(image="no-such-image", run_id="unit", keep="always",
                               artifacts_root=tmp_path / "art")
    machine = Machine(provider, settings, slots=slots, paths=paths, say=said.append)
    with pytest.raises(UsageError, match="unknown image"):
        machine.start()
    assert not machine.kept and said == []
    assert [c.split()[0] for c in provider.calls] == ["clone", "stop", "delete"]
    assert LeaseBook(paths.state / "leases").all() == []
    with slots.acquire(1):
        pass


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupt_deletes_even_a_vm_to_keep(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path, how: str,
    unguarded_sigterm: None,
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    machine = _machine(provider, paths, slots, tmp_path, keep="always")
    with pytest.raises(KeyboardInterrupt), machine as vm:
        pid = provider.pid(vm.name)
        if how == "ctrl-c":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM did not interrupt")
    assert not vm.kept
    _gone(provider, paths, vm, pid)
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_during_teardown_does_not_stop_the_teardown(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_stop = provider.stop

    def impatient_user_stop(name: object, timeout_s: float = 0.0) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C pressed while the VM is being stopped
        real_stop(name, timeout_s)  # type: ignore[arg-type]

    machine = _machine(provider, paths, slots, tmp_path)
    with pytest.raises(KeyboardInterrupt, match="during cleanup"), machine as vm:
        pid = provider.pid(vm.name)
        monkeypatch.setattr(provider, "stop", impatient_user_stop)
    _gone(provider, paths, vm, pid)
    assert provider.calls[-1].startswith("delete")


def test_sigterm_guard_swallows_a_prompt_repeat_and_restores(unguarded_sigterm: None) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with SigtermAsInterrupt(), SigtermAsInterrupt():  # nested: a no-op
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the second is swallowed while cleaning up
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_sigterm_after_the_grace_stops_the_run_again(unguarded_sigterm: None) -> None:
    # Had the first interrupt been swallowed, ignoring every later SIGTERM would make the run
    # unstoppable short of SIGKILL.
    with SigtermAsInterrupt(repeat_grace_s=0.0):
        for _ in range(2):
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)


def test_cleanup_runs_to_its_end_through_ctrl_c() -> None:
    # Whatever handler the process started with comes back (a job started in the background by
    # a non-interactive shell inherits SIGINT ignored, not Python's default handler).
    before = signal.getsignal(signal.SIGINT)
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt, match="SIGINT during cleanup"), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("after the signal")
        with interrupts_deferred():  # nested: defers to the outer one
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("inner")
        steps.append("end")
    assert steps == ["after the signal", "inner", "end"]
    assert signal.getsignal(signal.SIGINT) is before


def test_no_free_slot_is_a_clear_error_and_leaves_nothing(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path
) -> None:
    with slots.acquire(1, label="somebody"):
        machine = _machine(provider, paths, slots, tmp_path)
        with pytest.raises(Exception, match=f"all 1 VM slots busy .*{os.getpid()} \\(somebody\\)"):
            machine.start()
    assert provider.calls == [] and LeaseBook(paths.state / "leases").all() == []


def test_phases_reach_the_callback(provider: FakeProvider, paths: HostPaths, slots: SlotPool,
                                   tmp_path: Path) -> None:
    seen: list[PhaseRecord] = []
    settings = MachineSettings(image=FAKE_IMAGE, run_id="unit", artifacts_root=tmp_path)
    with Machine(provider, settings, slots=slots, paths=paths, on_phase=seen.append,
                 say=lambda _: None) as vm:
        assert vm.timings["boot"] > 0
    assert [r.phase for r in seen][-1] == "vm_teardown"
    assert all(r.target == FAKE_IMAGE and r.ok for r in seen)


def test_keep_policy_is_validated() -> None:
    assert parse_keep_policy("on-failure") == "on-failure"
    with pytest.raises(UsageError, match="never, on-failure, always"):
        parse_keep_policy("sometimes")


@pytest.fixture(autouse=True)
def _no_leftover_processes(provider: FakeProvider) -> Iterator[None]:
    yield
    marker = ["sleep", f"86400.{os.getpid()}"]
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] == marker:
            process.kill()
            pytest.fail("a stand-in hypervisor outlived its test")


def test_a_lost_connection_says_the_vm_is_gone_with_its_console(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path
) -> None:
    with _machine(provider, paths, slots, tmp_path) as vm:
        trace = "".join(f"[  438.8] register dump line {i}\n" for i in range(100))
        (paths.vms / str(vm.name) / "serial.log").write_text(
            "login: ready\nKernel panic - not syncing: sysrq triggered crash\n" + trace)
        provider.stop(vm.name)  # the hypervisor is gone, as after a guest panic with -no-reboot
        vm.ssh._transport.close()  # and with it the connection
        with pytest.raises(InfrastructureError) as caught:
            vm.run("true")
    assert f"VM {vm.name} is no longer running (stopped)" in caught.value.message
    assert "Kernel panic - not syncing" in caught.value.detail  # the cause leads, not the dump
    assert "login: ready" not in caught.value.detail


def test_a_lost_connection_to_a_running_vm_says_only_that(
    provider: FakeProvider, paths: HostPaths, slots: SlotPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.vm.machine.VM_EXIT_GRACE_S", 0.5)
    with _machine(provider, paths, slots, tmp_path) as vm:
        vm.ssh._transport.close()
        with pytest.raises(InfrastructureError) as caught:
            vm.run("true")
    assert "no longer running" not in caught.value.message
