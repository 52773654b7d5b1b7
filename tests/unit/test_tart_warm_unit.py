"""tart warm starts against the stand-in (loopback backend: no VM boots): the stand-in's suspend
contract as tart's sources define it, and the provider cloning suspended templates and resuming
them. Not run on Apple hardware: this host has no Mac (see harness/vm/tart/warm.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.host.run_label import VMName
from harness.testing import MakeTartStandin, StandinHome
from harness.vm.provider import VMOptions
from harness.vm.tart.cli import TartSettings
from harness.vm.tart.provider import TartProvider
from harness.vm.tart.warm import PERSONALIZE, RESTORED_TEXT, is_template
from harness.vm.warm.personalization import Personalization
from harness.vm.warm.plan import WarmStartWarning

EX_USAGE = 64


@pytest.fixture
def standin(make_tart_standin: MakeTartStandin, monkeypatch: pytest.MonkeyPatch) -> StandinHome:
    home = make_tart_standin("loopback")
    home.export_tart_env(monkeypatch.setenv)
    home.golden("mac", "linux-debian12", "--os", "darwin")
    home.golden("linux", "linux-debian12")
    return home


@pytest.fixture
def provider(standin: StandinHome, tmp_path: Path) -> Iterator[TartProvider]:
    settings = TartSettings(binary=str(standin.shim), ssh_port=standin.ssh_port, start_grace_s=0.5)
    made = TartProvider(settings, HostPaths(cache=tmp_path / "cache", state=tmp_path / "state"))
    yield made
    for vm in made.list():
        if vm.owner_pid is not None or is_template(vm.name):
            made.stop(vm.name, timeout_s=5)  # type: ignore[arg-type]
            made.delete(vm.name)  # type: ignore[arg-type]


def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    return proc.wait(timeout=timeout_s)


def _state(standin: StandinHome, name: str) -> str:
    rows = json.loads(standin.tart("list", "--format", "json").stdout)
    return next(row["State"] for row in rows if row["Name"] == name)


# ---------------------------------------------------------------- the stand-in's contract


def test_suspend_saves_exits_and_run_resumes_once(standin: StandinHome) -> None:
    assert standin.tart("clone", "mac", "vm1").returncode == 0
    run = standin.start_run("vm1", "--suspendable")
    standin.wait_running("vm1")
    suspend = standin.tart("suspend", "vm1")
    assert suspend.returncode == 0, suspend.stderr
    assert _wait_exit(run) == 0, standin.run_log("vm1")
    assert "snapshot created successfully" in standin.run_log("vm1")
    assert _state(standin, "vm1") == "suspended"

    # clone copies the saved state; run restores it once, then it is gone
    assert standin.tart("clone", "vm1", "vm2").returncode == 0
    assert _state(standin, "vm2") == "suspended"
    run = standin.start_run("vm2")  # no --suspendable: a suspended VM runs suspendable anyway
    standin.wait_running("vm2")
    assert RESTORED_TEXT in standin.run_log("vm2")
    assert not standin.home.vm("vm2").state_path.exists()
    assert _state(standin, "vm2") == "running"


def test_suspend_refusals_follow_tart(standin: StandinHome) -> None:
    assert standin.tart("suspend", "mac").returncode == 2  # not running
    assert standin.tart("clone", "linux", "lin").returncode == 0
    refused = standin.start_run("lin", "--suspendable")
    assert _wait_exit(refused) == EX_USAGE
    assert "You can only suspend macOS VMs" in standin.run_log("lin")

    assert standin.tart("clone", "mac", "plain").returncode == 0
    run = standin.start_run("plain")  # not --suspendable
    standin.wait_running("plain")
    assert standin.tart("suspend", "plain").returncode == 0
    assert _wait_exit(run) == 1, "a VM that is not suspendable cannot be saved: tart exits 1"
    assert _state(standin, "plain") == "stopped"


def test_a_changed_machine_cannot_be_restored_and_a_taken_mac_discards_the_state(standin: StandinHome) -> None:
    standin.tart("clone", "mac", "tpl")
    run = standin.start_run("tpl", "--suspendable")
    standin.wait_running("tpl")
    standin.tart("suspend", "tpl")
    _wait_exit(run)

    standin.tart("clone", "tpl", "changed")
    standin.tart("set", "changed", "--cpu", "8")
    assert _wait_exit(standin.start_run("changed")) == 1

    standin.tart("clone", "tpl", "twin1")
    standin.tart("clone", "tpl", "twin2")
    standin.start_run("twin1")
    standin.wait_running("twin1")
    standin.start_run("twin2")
    standin.wait_running("twin2")
    assert RESTORED_TEXT in standin.run_log("twin1")
    assert RESTORED_TEXT not in standin.run_log("twin2"), "same MAC running: tart boots it instead"
    assert "same MAC address" in standin.run_log("twin2")
    mac = lambda name: standin.home.vm(name).config()["macAddress"]
    assert mac("twin1") != mac("twin2")


# ---------------------------------------------------------------- the provider


def _commands(provider: TartProvider) -> list[str]:
    return [line.split(" -> ")[0].split(" ", 2)[2] for line in
            (provider.paths.state / "tart-commands.log").read_text().splitlines() if " -> " in line]


def _ready(provider: TartProvider, image: str = "mac") -> VMName:
    name = VMName.new("unit")
    provider.clone(image, name, VMOptions(warm=True))
    provider.start(name)
    provider.wait_ready(name, timeout_s=60)
    return name


def test_warm_clones_resume_suspended_templates(provider: TartProvider) -> None:
    first = _ready(provider)
    assert provider.start_mode(first).used == "warm", provider.start_mode(first)
    templates = {vm.name: vm.state for vm in provider.list() if is_template(vm.name)}
    assert list(templates.values()) == ["suspended"] and "mac" in provider.images()
    assert not any(is_template(image) for image in provider.images()), "templates are not images"
    commands = _commands(provider)
    assert not any(c.startswith(f"set {first}") for c in commands), "`set` would void the saved state"
    assert any(c.startswith(f"run {first}") and "--suspendable" in c for c in commands)

    # A second warm VM while the first runs: another template (another MAC), so it resumes too.
    second = _ready(provider)
    assert provider.start_mode(second).used == "warm"
    assert len([vm for vm in provider.list() if is_template(vm.name)]) == 2

    # Later clones reuse the templates: no more builds.
    for name in (first, second):
        provider.stop(name, timeout_s=5)
        provider.delete(name)
    builds = sum(1 for c in _commands(provider) if c.startswith("suspend "))
    third = _ready(provider)
    assert provider.start_mode(third).used == "warm"
    assert sum(1 for c in _commands(provider) if c.startswith("suspend ")) == builds == 2


def test_a_linux_image_boots_cold_without_a_template(provider: TartProvider) -> None:
    name = _ready(provider, "linux")
    mode = provider.start_mode(name)
    assert mode.used == "cold" and "only macOS" in mode.detail
    assert not any(is_template(vm.name) for vm in provider.list())


def test_a_clone_tart_did_not_resume_is_reported_cold(provider: TartProvider) -> None:
    provider.warm.pool_size = 1  # both clones from one template: tart gives the second a new MAC
    first = _ready(provider)
    with pytest.warns(WarmStartWarning, match="instead of resuming"):
        second = _ready(provider)
    assert provider.start_mode(first).used == "warm"
    mode = provider.start_mode(second)
    assert mode.used == "cold" and mode.requested


def test_a_template_that_cannot_be_built_means_a_cold_clone(provider: TartProvider,
                                                            standin: StandinHome) -> None:
    provider.settings = TartSettings(binary=str(standin.shim), ssh_port=standin.ssh_port, start_grace_s=0.5,
                                     extra_run_args=("--dir=share:/tmp",))  # tart cannot suspend with shares
    with pytest.warns(WarmStartWarning, match="no suspended template"):
        name = _ready(provider)
    assert provider.start_mode(name).used == "cold"
    assert not any(is_template(vm.name) for vm in provider.list()), "a failed template is deleted"


# ---------------------------------------------------------------- personalising a macOS guest


def test_the_macos_personalisation_sets_clock_and_a_fresh_host_key(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uname").write_text("#!/bin/sh\necho Darwin\n")
    (fake / "date").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/date-args\n")
    for tool in ("uname", "date"):
        (fake / tool).chmod(0o755)
    keys = tmp_path / "ssh"
    keys.mkdir()
    for old in ("ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ecdsa_key", "ssh_host_ed25519_key"):
        (keys / old).write_text("template key\n")
    personal = Personalization.new()
    done = subprocess.run(
        ["sh", "-c", PERSONALIZE, "harness", "1700000000", personal.host_key_private.strip(),
         personal.host_key_public, str(keys)],
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0 and "personalised" in done.stdout, done.stderr
    assert (tmp_path / "date-args").read_text().split() == ["-u", "-f", "%s", "1700000000"]
    assert sorted(p.name for p in keys.iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    assert (keys / "ssh_host_ed25519_key").read_text().strip() == personal.host_key_private.strip()
    assert (keys / "ssh_host_ed25519_key.pub").read_text().strip() == personal.host_key_public
    assert stat.S_IMODE((keys / "ssh_host_ed25519_key").stat().st_mode) == 0o600


def test_only_this_images_other_templates_are_outdated() -> None:
    from harness.vm.tart.warm import TemplateKey

    key = TemplateKey(image="mac", tart_version="2.30", cpu=4, memory_mb=8192, run_flags=())
    other = TemplateKey(image="mac", tart_version="2.31", cpu=4, memory_mb=8192, run_flags=())
    sibling = TemplateKey(image="mac-2", tart_version="2.30", cpu=4, memory_mb=8192, run_flags=())
    assert key.outdated(other.template(1)) and not key.outdated(key.template(1))
    assert not key.outdated(sibling.template(0)), "another image's template is not ours to delete"
    assert not key.outdated("mac") and not key.outdated(f"{key.template(0)}x")
