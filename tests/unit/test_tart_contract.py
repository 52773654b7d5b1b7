"""tart's documented behaviour (tart-contract.md), pinned against the stand-in.

One test per row of the contract. When tart changes, the contract document, this file and the
stand-in change together, and the provider's tests then show what the provider must do about it.
The ``idle`` backend keeps these fast: no guest boots; only the CLI's behaviour is under test.
"""

from __future__ import annotations

import json
import signal
import socket

import pytest

from harness.testing import MakeTartStandin, StandinHome

LIST_FIELDS = {"Source", "Name", "Disk", "Size", "Accessed", "Running", "State"}
GET_FIELDS = {"OS", "CPU", "Memory", "Disk", "DiskFormat", "Size", "Display", "Running", "State"}


@pytest.fixture
def standin(make_tart_standin: MakeTartStandin) -> StandinHome:
    home = make_tart_standin()
    home.golden()
    return home


def _mac(standin: StandinHome, name: str) -> str:
    return str(standin.home.vm(name).config()["macAddress"])


def _listing(standin: StandinHome) -> dict[str, dict[str, object]]:
    result = standin.tart("list", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {row["Name"]: row for row in json.loads(result.stdout)}


def test_clone_silently_overwrites_an_existing_vm(standin: StandinHome) -> None:
    assert standin.tart("clone", "golden", "victim").returncode == 0
    standin.tart("set", "victim", "--cpu", "7")
    result = standin.tart("clone", "golden", "victim")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert standin.home.vm("victim").config()["cpuCount"] == 2  # the earlier VM is gone, no word said


def test_clone_keeps_the_mac_until_set_random_mac(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "copy")
    assert _mac(standin, "copy") == _mac(standin, "golden")
    assert standin.tart("set", "copy", "--random-mac").returncode == 0
    assert _mac(standin, "copy") != _mac(standin, "golden")


def test_ip_of_an_unrandomised_clone_is_the_stale_lease_of_another_vm(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "first")
    standin.start_run("first")
    standin.wait_running("first")
    first_ip = standin.tart("ip", "first").stdout.strip()
    assert standin.tart("stop", "first").returncode == 0
    standin.tart("clone", "golden", "second")  # same MAC as "first"
    standin.start_run("second")
    standin.wait_running("second")
    assert standin.tart("ip", "second").stdout.strip() == first_ip


def test_run_stays_in_the_foreground_until_sigint_then_exits_0(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    proc = standin.start_run("vm")
    standin.wait_running("vm")
    assert proc.poll() is None
    assert _listing(standin)["vm"]["State"] == "running"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert _listing(standin)["vm"]["State"] == "stopped"


def test_a_third_vm_hits_apples_limit_with_apples_text(standin: StandinHome) -> None:
    for name in ("a", "b", "c"):
        standin.tart("clone", "golden", name)
    for name in ("a", "b"):
        standin.start_run(name)
        standin.wait_running(name)
    proc = standin.start_run("c")
    assert proc.wait(timeout=20) == 1
    assert "The number of VMs exceeds the system limit" in standin.run_log("c")


def test_run_of_a_running_vm_exits_2(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    standin.start_run("vm")
    standin.wait_running("vm")
    assert standin.tart("run", "vm").returncode == 2


def test_ip_wait_gives_up_with_exit_1_and_tarts_message(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    standin.start_run("vm")
    standin.wait_running("vm")
    # The vanilla images have no guest agent: the agent resolver never finds an address.
    result = standin.tart("ip", "vm", "--wait", "2", "--resolver", "agent")
    assert result.returncode == 1
    assert "no IP address found" in result.stderr


def test_arp_resolver_cannot_see_softnet_guests(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    standin.start_run("vm", "--net-softnet-block=0.0.0.0/0", "--net-softnet-allow=@host")
    standin.wait_running("vm")
    assert standin.tart("ip", "vm", "--resolver", "dhcp").returncode == 0
    assert standin.tart("ip", "vm", "--wait", "1", "--resolver", "arp").returncode == 1


def test_ip_of_a_stopped_vm_exits_2(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    assert standin.tart("ip", "vm", "--wait", "1").returncode == 2


def test_list_json_has_tarts_fields_and_states(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    rows = _listing(standin)
    assert set(rows["vm"]) == LIST_FIELDS
    assert rows["vm"]["Source"] == "local" and rows["vm"]["Running"] is False
    assert rows["vm"]["State"] == "stopped"
    assert isinstance(rows["vm"]["Disk"], int) and isinstance(rows["vm"]["Size"], int)


def test_get_json_has_tarts_fields(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    standin.tart("set", "vm", "--cpu", "3", "--memory", "6144")
    result = standin.tart("get", "vm", "--format", "json")
    info = json.loads(result.stdout)
    assert set(info) == GET_FIELDS
    assert (info["CPU"], info["Memory"], info["State"]) == (3, 6144, "stopped")


def test_get_of_a_missing_vm_exits_2(standin: StandinHome) -> None:
    assert standin.tart("get", "ghost", "--format", "json").returncode == 2


def test_stop_of_a_vm_that_is_not_running_exits_2(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    assert standin.tart("stop", "vm", "--timeout", "5").returncode == 2
    assert standin.tart("stop", "ghost").returncode == 2


def test_stop_of_a_running_vm_stops_it(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    proc = standin.start_run("vm")
    standin.wait_running("vm")
    assert standin.tart("stop", "vm", "--timeout", "10").returncode == 0
    assert proc.wait(timeout=10) == 0


def test_delete_refuses_a_running_vm_with_exit_1(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    standin.start_run("vm")
    standin.wait_running("vm")
    result = standin.tart("delete", "vm")
    assert result.returncode == 1
    assert standin.home.vm("vm").exists()


def test_delete_of_a_missing_vm_exits_2(standin: StandinHome) -> None:
    assert standin.tart("delete", "ghost").returncode == 2


def test_prune_vms_deletes_golden_images_too(standin: StandinHome) -> None:
    """Why the provider must never call it: it takes every stopped VM, ours or not."""
    standin.tart("clone", "golden", "vm")
    assert standin.tart("prune", "--entries", "vms").returncode == 0
    assert _listing(standin) == {}


def test_vms_live_under_tart_home(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    assert (standin.home.root / "vms" / "vm" / "config.json").is_file()
    assert (standin.home.root / "vms" / "vm" / "disk.img").is_file()


def test_clone_of_an_unknown_remote_image_fails_with_exit_1(standin: StandinHome) -> None:
    result = standin.tart("clone", "ghcr.io/cirruslabs/macos-nothing-vanilla:latest", "vm")
    assert result.returncode == 1


def test_clone_of_a_known_remote_image_pulls_it_into_the_oci_cache(standin: StandinHome) -> None:
    remote = "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest"
    standin.tart("standin-import", remote, "--backing", "linux-debian12", "--remote")
    assert standin.tart("clone", remote, "vm").returncode == 0
    assert remote in json.loads(standin.tart("list", "--format", "json", "--source", "oci").stdout)[0]["Name"]


def _ssh_port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def reachable_standin(make_tart_standin: MakeTartStandin) -> StandinHome:
    home = make_tart_standin("loopback")
    home.golden()
    home.tart("clone", "golden", "vm")
    return home


def test_softnet_block_all_cuts_the_host_off(reachable_standin: StandinHome) -> None:
    reachable_standin.start_run("vm", "--net-softnet-block=0.0.0.0/0")
    reachable_standin.wait_running("vm")
    address = reachable_standin.tart("ip", "vm").stdout.strip()
    assert address  # DHCP still works ...
    assert not _ssh_port_open(address, reachable_standin.ssh_port)  # ... but SSH from the host does not


@pytest.mark.parametrize("allow", ["@host", "192.168.64.1/32"])
def test_softnet_allowing_the_gateway_back_restores_ssh(reachable_standin: StandinHome, allow: str) -> None:
    reachable_standin.start_run("vm", "--net-softnet-block=0.0.0.0/0", f"--net-softnet-allow={allow}")
    reachable_standin.wait_running("vm", key="ssh_port")
    state = reachable_standin.home.vm("vm").run_state()
    assert _ssh_port_open(state["address"], reachable_standin.ssh_port)


def test_softnet_before_0_19_rejects_at_host(standin: StandinHome) -> None:
    standin.tart("clone", "golden", "vm")
    proc = standin.start_run(
        "vm", "--net-softnet-block=0.0.0.0/0", "--net-softnet-allow=@host",
        env={"TART_STANDIN_SOFTNET_VERSION": "0.18.1"},
    )
    assert proc.wait(timeout=20) == 1
    assert "@host" in standin.run_log("vm")
