"""OrchardProvider against the Orchard stand-in (documented request/response shapes on 127.0.0.1).

The port-forward path is real end to end: httpx and the websockets client talk to a local HTTP
server, the WebSocket carries an SSH session to the stand-in's loopback SSH guest, and the
provider's first login installs its key through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.errors import BootTimeout, InfrastructureError, UsageError
from harness.host.run_label import VMName
from harness.testing import OrchardStandin
from harness.vm.orchard.provider import OrchardProvider, OrchardSettings
from harness.vm.provider import VMOptions
from harness.vm.tart.macos_login import RunKey, key_login_works


@pytest.fixture
def api() -> Iterator[OrchardStandin]:
    with OrchardStandin(failing_images=frozenset({"broken-image"})) as server:
        yield server


def _provider(api: OrchardStandin, tmp_path: Path, token: str = "secret") -> OrchardProvider:
    settings = OrchardSettings(url=api.url, account="harness", token=token, images=("macos-clean",), forward_wait_s=5)
    return OrchardProvider(settings, HostPaths(cache=tmp_path / "cache", state=tmp_path / "state"))


@pytest.fixture
def provider(api: OrchardStandin, tmp_path: Path) -> Iterator[OrchardProvider]:
    made = _provider(api, tmp_path)
    yield made
    made.close()


def test_create_wait_login_and_delete(provider: OrchardProvider, api: OrchardStandin) -> None:
    name = VMName.new("orch")
    provider.clone("macos-clean", name)
    provider.start(name)
    assert provider.ip(name, wait_s=5) is not None
    endpoint = provider.wait_ready(name, timeout_s=30)
    assert endpoint.host == "127.0.0.1" and endpoint.user == "admin"
    assert key_login_works(endpoint.host, endpoint.port, "admin", RunKey.load(endpoint.key_path), 10)
    assert [vm.state for vm in provider.list() if vm.name == str(name)] == ["running"]
    provider.delete(name)
    assert provider.list() == []
    assert ("DELETE", f"/v1/vms/{name}") in api.requests


def test_the_spec_cuts_the_network_and_carries_the_login(provider: OrchardProvider, api: OrchardStandin) -> None:
    name = VMName.new("orch")
    provider.clone("macos-clean", name, VMOptions(cpus=6, memory_mb=1024))
    spec = api.vms[str(name)].spec
    assert spec["netSoftnetBlock"] == ["0.0.0.0/0"] and spec["netSoftnetAllow"] == ["@host"]
    assert (spec["cpu"], spec["memory"], spec["os"], spec["headless"]) == (6, 8192, "darwin", True)
    assert (spec["username"], spec["password"]) == ("admin", "admin")
    provider.delete(name)


def test_a_taken_name_is_refused_not_reused(provider: OrchardProvider) -> None:
    name = VMName.new("orch")
    provider.clone("macos-clean", name)
    with pytest.raises(InfrastructureError, match="already has a VM named"):
        provider.clone("macos-clean", name)
    provider.delete(name)


def test_a_failed_vm_reports_orchards_status_message(provider: OrchardProvider) -> None:
    name = VMName.new("orch")
    provider.clone("broken-image", name)
    with pytest.raises(InfrastructureError, match="failed to pull image broken-image") as info:
        provider.start(name)
    assert "failed" in info.value.detail  # the VM's events
    provider.delete(name)


def test_a_vm_never_scheduled_times_out(tmp_path: Path) -> None:
    with OrchardStandin(schedule_delay_s=30) as slow:
        provider = _provider(slow, tmp_path)
        name = VMName.new("orch")
        provider.clone("macos-clean", name)
        with pytest.raises(BootTimeout, match="pending"):
            provider.start(name, timeout_s=1.5)
        provider.delete(name)
        provider.close()


def test_wrong_credentials_name_the_settings(api: OrchardStandin, tmp_path: Path) -> None:
    provider = _provider(api, tmp_path, token="wrong")
    with pytest.raises(InfrastructureError, match="refused") as info:
        provider.list()
    assert "HARNESS_ORCHARD_TOKEN" in info.value.hint
    provider.close()


def test_an_unreachable_controller_is_a_clear_error(tmp_path: Path) -> None:
    settings = OrchardSettings(url="http://127.0.0.1:9", request_timeout_s=2)
    provider = OrchardProvider(settings, HostPaths(tmp_path, tmp_path))
    with pytest.raises(InfrastructureError, match="is up and reachable"):
        provider.list()


def test_delete_of_an_unknown_vm_is_not_an_error(provider: OrchardProvider) -> None:
    provider.delete(VMName.new("orch"))


def test_settings_need_a_url() -> None:
    with pytest.raises(UsageError, match="HARNESS_ORCHARD_URL"):
        OrchardSettings.from_env({})
    settings = OrchardSettings.from_env({"HARNESS_ORCHARD_URL": "http://o:6120/", "HARNESS_ORCHARD_IMAGES": "a,b",
                                         "HARNESS_ORCHARD_SOFTNET_ALLOW": "192.168.64.1/32"})
    assert (settings.url, settings.images, settings.softnet_allow) == ("http://o:6120", ("a", "b"), ("192.168.64.1/32",))


def test_a_large_transfer_survives_the_websocket_bridge(provider: OrchardProvider) -> None:
    import paramiko

    name = VMName.new("orch")
    provider.clone("macos-clean", name)
    endpoint = provider.wait_ready(name, timeout_s=30)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(endpoint.host, endpoint.port, endpoint.user, key_filename=str(endpoint.key_path),
                   look_for_keys=False, allow_agent=False, timeout=10)
    try:
        _, stdout, _ = client.exec_command("head -c 3000000 /dev/zero | tr '\\0' 'x'", timeout=60)
        assert len(stdout.read()) == 3_000_000
    finally:
        client.close()
    provider.delete(name)
