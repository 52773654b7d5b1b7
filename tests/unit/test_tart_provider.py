"""TartProvider against the tart stand-in (fast backends: no VM boots here).

The ``loopback`` backend answers SSH with tart's default login, so the provider's whole path runs
for real: list, clone, set, run detached, ip, SSH proof, password login, key install, key login,
stop, delete. The e2e tests (tests/e2e/test_tart_*.py) repeat it with QEMU guests behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.errors import BootTimeout, InfrastructureError, MissingToolError, UsageError
from harness.host.reaper import reap
from harness.host.run_label import VMName
from harness.testing import MakeTartStandin, StandinHome
from harness.vm.provider import VMOptions
from harness.vm.tart.cli import SoftnetPolicy, TartSettings
from harness.vm.tart.macos_login import RunKey, key_login_works
from harness.vm.tart.provider import TartProvider


@pytest.fixture
def standin(make_tart_standin: MakeTartStandin, monkeypatch: pytest.MonkeyPatch) -> StandinHome:
    home = make_tart_standin("loopback")
    home.export_tart_env(monkeypatch.setenv)
    home.golden()
    return home


def _provider(standin: StandinHome, tmp_path: Path, **overrides: object) -> TartProvider:
    settings = TartSettings(binary=str(standin.shim), ssh_port=standin.ssh_port, start_grace_s=0.5, **overrides)  # type: ignore[arg-type]
    return TartProvider(settings, HostPaths(cache=tmp_path / "cache", state=tmp_path / "state"))


@pytest.fixture
def provider(standin: StandinHome, tmp_path: Path) -> Iterator[TartProvider]:
    made = _provider(standin, tmp_path)
    yield made
    for vm in made.list():
        parsed = VMName.parse(vm.name)
        if parsed is not None:
            made.stop(parsed, timeout_s=5)
            made.delete(parsed)


def test_full_life_cycle_with_first_password_login_then_key(provider: TartProvider) -> None:
    name = VMName.new("unit")
    provider.clone("golden", name)
    provider.start(name)
    endpoint = provider.wait_ready(name, timeout_s=60)
    assert (endpoint.user, endpoint.port) == ("admin", provider.settings.ssh_port)
    assert endpoint.host.startswith("127.77.")  # the stand-in's lease, as `tart ip` printed it
    assert key_login_works(endpoint.host, endpoint.port, "admin", RunKey.load(endpoint.key_path), 10)
    assert [vm.state for vm in provider.list() if vm.name == str(name)] == ["running"]
    provider.stop(name)
    provider.delete(name)
    assert str(name) not in {vm.name for vm in provider.list()}
    assert not provider.vm_dir(name).exists()


def test_clone_randomises_the_mac_and_sets_the_hardware(provider: TartProvider, standin: StandinHome) -> None:
    name = VMName.new("unit")
    provider.clone("golden", name, VMOptions(cpus=8, memory_mb=1024))
    config = standin.home.vm(str(name)).config()
    assert config["macAddress"] != standin.home.vm("golden").config()["macAddress"]
    assert (config["cpuCount"], config["memorySize"]) == (8, provider.settings.memory_mb * 1024 * 1024)


def test_clone_refuses_to_overwrite_an_existing_vm(provider: TartProvider, standin: StandinHome) -> None:
    name = VMName.new("unit")
    standin.tart("clone", "golden", str(name))
    with pytest.raises(InfrastructureError, match="already exists; refusing"):
        provider.clone("golden", name)


def test_clone_of_an_unknown_image_says_how_to_get_one(provider: TartProvider) -> None:
    with pytest.raises(InfrastructureError, match="tart clone nothing") as info:
        provider.clone("nothing", VMName.new("unit"))
    assert "vm_images/macos" in info.value.hint


def test_images_are_the_local_vms_that_are_not_ours(provider: TartProvider) -> None:
    provider.clone("golden", VMName.new("unit"))
    assert provider.images() == ["golden"]


def test_run_flags_cut_the_network_and_keep_the_host(provider: TartProvider) -> None:
    command = provider.run_command("x")
    assert command[1:6] == ["run", "x", "--no-graphics", "--no-audio", "--no-clipboard"]
    assert "--net-softnet-block=0.0.0.0/0" in command and "--net-softnet-allow=@host" in command


def test_old_softnet_works_with_the_gateway_policy(standin: StandinHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TART_STANDIN_SOFTNET_VERSION", "0.18.0")
    old = _provider(standin, tmp_path, softnet=SoftnetPolicy.parse("gateway"))
    name = VMName.new("unit")
    old.clone("golden", name)
    old.start(name)
    try:
        assert old.wait_ready(name, timeout_s=60).user == "admin"
    finally:
        old.stop(name)
        old.delete(name)


def test_at_host_on_old_softnet_is_an_early_exit_with_the_log(provider: TartProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TART_STANDIN_SOFTNET_VERSION", "0.18.0")
    name = VMName.new("unit")
    provider.clone("golden", name)
    with pytest.raises(InfrastructureError, match="exited early") as info:
        provider.start(name)  # caught here or, on a slow host, by wait_ready's watch
        provider.wait_ready(name, timeout_s=30)
    assert "@host" in info.value.detail


def test_blocking_the_gateway_leaves_the_ip_unproven_and_times_out(standin: StandinHome, tmp_path: Path) -> None:
    cut_off = _provider(standin, tmp_path, softnet=SoftnetPolicy(mode="off"), extra_run_args=("--net-softnet-block=0.0.0.0/0",))
    name = VMName.new("unit")
    cut_off.clone("golden", name)
    cut_off.start(name)
    try:
        with pytest.raises(BootTimeout, match="does not speak SSH"):
            cut_off.wait_ready(name, timeout_s=6)
    finally:
        cut_off.stop(name)
        cut_off.delete(name)


def test_apples_vm_limit_becomes_a_clear_error(provider: TartProvider, standin: StandinHome, monkeypatch: pytest.MonkeyPatch) -> None:
    standin.tart("clone", "golden", "developers-own-vm")
    standin.start_run("developers-own-vm")
    standin.wait_running("developers-own-vm")
    assert provider.foreign_running_count() == 1
    monkeypatch.setenv("TART_STANDIN_VM_LIMIT", "1")  # this host's limit is already reached
    name = VMName.new("unit")
    provider.clone("golden", name)
    with pytest.raises(InfrastructureError, match="at most 2 VMs per host") as info:
        provider.start(name)
        provider.wait_ready(name, timeout_s=30)
    assert "tart stop" in info.value.hint


def test_start_refuses_beyond_the_limit_before_calling_tart(provider: TartProvider, standin: StandinHome) -> None:
    for other in ("mine-a", "mine-b"):
        standin.tart("clone", "golden", other)
        standin.start_run(other)
        standin.wait_running(other)
    name = VMName.new("unit")
    provider.clone("golden", name)
    with pytest.raises(InfrastructureError, match="2 not started by the harness"):
        provider.start(name)


def test_stop_and_delete_tolerate_what_is_already_gone(provider: TartProvider) -> None:
    name = VMName.new("unit")
    provider.clone("golden", name)
    provider.stop(name)  # not running: tart exits 2
    provider.delete(name)
    provider.delete(name)  # does not exist: tart exits 2


def test_delete_of_a_running_vm_stops_it_first(provider: TartProvider) -> None:
    name = VMName.new("unit")
    provider.clone("golden", name)
    provider.start(name)
    provider.delete(name)
    assert str(name) not in {vm.name for vm in provider.list()}


def test_leftovers_of_a_dead_owner_are_reaped_and_nothing_else(provider: TartProvider, standin: StandinHome, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False)
    leftover = VMName.new("gone", owner_pid=int(dead.stdout))
    standin.tart("clone", "golden", str(leftover))
    standin.start_run(str(leftover))
    standin.wait_running(str(leftover))
    alive = VMName.new("unit")
    provider.clone("golden", alive)
    reap([provider], provider.paths)
    names = {vm.name for vm in provider.list()}
    assert str(leftover) not in names
    assert {"golden", str(alive)} <= names
    commands = (provider.paths.state / "tart-commands.log").read_text()
    assert "tart prune" not in commands


def test_every_tart_call_is_logged_with_its_outcome(provider: TartProvider) -> None:
    provider.clone("golden", VMName.new("unit"))
    log = (provider.paths.state / "tart-commands.log").read_text()
    assert "tart list --format json -> exit 0" in log
    assert "--random-mac" in log


def test_a_missing_tart_names_the_fix(tmp_path: Path) -> None:
    provider = TartProvider(TartSettings(binary=str(tmp_path / "no-tart")), HostPaths(tmp_path, tmp_path))
    with pytest.raises(MissingToolError) as info:
        provider.list()
    assert "HARNESS_TART_BIN" in info.value.hint


def test_a_hung_tart_command_is_cut_at_its_deadline(tmp_path: Path) -> None:
    hung = tmp_path / "tart"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(0o755)
    provider = TartProvider(TartSettings(binary=str(hung), command_timeout_s=0.5), HostPaths(tmp_path, tmp_path))
    with pytest.raises(InfrastructureError, match="did not finish within"):
        provider.list()


def test_garbage_from_tart_list_is_a_clear_error(tmp_path: Path) -> None:
    odd = tmp_path / "tart"
    odd.write_text("#!/bin/sh\necho 'Name Source'\n")
    odd.chmod(0o755)
    with pytest.raises(InfrastructureError, match="not JSON"):
        TartProvider(TartSettings(binary=str(odd)), HostPaths(tmp_path, tmp_path)).list()


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"HARNESS_TART_BIN": "/opt/tart", "HARNESS_TART_SOFTNET": "gateway:10.0.0.1", "HARNESS_TART_USER": "ci",
           "HARNESS_TART_PASSWORD": "", "HARNESS_TART_SSH_PORT": "2222", "HARNESS_TART_RESOLVERS": "agent"}
    settings = TartSettings.from_env(env)
    assert (settings.binary, settings.user, settings.password, settings.ssh_port) == ("/opt/tart", "ci", None, 2222)
    assert settings.softnet.run_flags() == ["--net-softnet-block=0.0.0.0/0", "--net-softnet-allow=10.0.0.1/32"]
    assert settings.resolvers == ("agent",)
    assert TartSettings.from_env({}).ssh_port == 22  # real tart guests: port 22


@pytest.mark.parametrize("env", [{"HARNESS_TART_SOFTNET": "bridged"}, {"HARNESS_TART_CPU": "many"}])
def test_bad_settings_are_usage_errors(env: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        TartSettings.from_env(env)


def test_the_run_process_is_detached_in_its_own_session(provider: TartProvider) -> None:
    name = VMName.new("unit")
    provider.clone("golden", name)
    provider.start(name)
    pid = int((provider.vm_dir(name) / "tart-run.pid").read_text())
    assert os.getsid(pid) == pid != os.getsid(0)
    provider.stop(name)
    provider.delete(name)


def test_stand_in_list_json_parses_into_vminfo(provider: TartProvider, standin: StandinHome) -> None:
    rows = json.loads(standin.tart("list", "--format", "json").stdout)
    assert [vm.name for vm in provider.list()] == [row["Name"] for row in rows]


def test_sigint_to_the_run_process_is_a_normal_stop(provider: TartProvider) -> None:
    name = VMName.new("unit")
    provider.clone("golden", name)
    provider.start(name)
    pid = int((provider.vm_dir(name) / "tart-run.pid").read_text())
    os.kill(pid, signal.SIGINT)
    provider.stop(name)  # exit 2 now (not running) is fine
    assert [vm.state for vm in provider.list() if vm.name == str(name)] == ["stopped"]
    provider.delete(name)
