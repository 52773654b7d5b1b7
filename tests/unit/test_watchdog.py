"""The run watchdog with real processes and the real QEMU provider's teardown, no VM: a "VM" is a
QEMU provider directory whose recorded hypervisor is a sleeping Python process naming that
directory on its command line (what the provider checks before it signals anything)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from harness.config import HostPaths
from harness.host.run_label import LeaseBook, VMName
from harness.testing import StandinHome
from harness.testing.orchard_standin import OrchardStandin
from harness.vm.watchdog import Teardown, Watchdog

OWNER = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    from pathlib import Path
    import psutil
    from harness.config import HostPaths
    from harness.vm.watchdog import Watchdog
    from harness.host.run_label import Lease, LeaseBook

    paths = HostPaths(cache=Path(sys.argv[1]), state=Path(sys.argv[2]))
    names, how = sys.argv[3].split(","), sys.argv[4]
    dog = Watchdog.spawn(paths, Path(sys.argv[5]))
    for name in names:
        vm_dir = paths.vms / name
        vm_dir.mkdir(parents=True)
        (vm_dir / "overlay.qcow2").write_bytes(b"\\0" * 4096)
        hypervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", str(vm_dir)],
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        (vm_dir / "meta.json").write_text(json.dumps({
            "name": name, "image": "linux-debian12", "image_hash": "x", "image_dir": str(vm_dir),
            "owner_pid": os.getpid(), "created": "now", "qemu_pid": hypervisor.pid,
            "qemu_started": psutil.Process(hypervisor.pid).create_time()}))
        LeaseBook(paths.state / "leases").write(Lease.for_this_process(name, "qemu", "linux-debian12"))
        dog.watch("qemu", name)
    if how == "keep":
        dog.release(names[0])
    print(json.dumps({"watchdog": dog.pid}), flush=True)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    dog.close()
    """
)


def _name(tag: str) -> str:
    return str(VMName(run_id="unitdog", owner_pid=os.getpid(), tag=tag))


def _hypervisor(paths: HostPaths, name: str) -> int:
    return int(json.loads((paths.vms / name / "meta.json").read_text())["qemu_pid"])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait(predicate: object, timeout_s: float) -> float:
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"not within {timeout_s}s")
        time.sleep(0.05)
    return time.monotonic() - started


def _owner(paths: HostPaths, names: list[str], how: str, log: Path) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", OWNER, str(paths.cache), str(paths.state), ",".join(names),
                           how, str(log)], capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.splitlines()[-1])["watchdog"], done.returncode


@pytest.fixture
def paths(tmp_path: Path) -> HostPaths:
    return HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")


def test_a_sigkilled_owner_loses_its_vms_within_seconds(paths: HostPaths, tmp_path: Path) -> None:
    names = [_name("a1"), _name("b2")]
    watchdog, code = _owner(paths, names, "sigkill", tmp_path / "watchdog.log")
    assert code == -signal.SIGKILL
    hypervisors = [_hypervisor(paths, n) for n in names if (paths.vms / n).exists()]
    leases = LeaseBook(paths.state / "leases")
    # A VM's lease goes right after its directory: the whole clean-up counts, not the disk alone.
    took = _wait(lambda: not any((paths.vms / n).exists() for n in names) and leases.all() == [], 10)
    assert all(_gone(pid) for pid in hypervisors), "a hypervisor outlived its owner"
    _wait(lambda: _gone(watchdog), 10)  # its work done, the watchdog is gone too
    log = (tmp_path / "watchdog.log").read_text()
    assert all(f"removed {n}" in log for n in names), log
    assert took < 10


def test_a_released_vm_stays_and_the_watchdog_still_exits(paths: HostPaths, tmp_path: Path) -> None:
    kept, dropped = _name("k1"), _name("d2")
    watchdog, code = _owner(paths, [kept, dropped], "keep", tmp_path / "watchdog.log")
    assert code == 0
    _wait(lambda: _gone(watchdog), 10)
    # close() without a release: the owner ended with a VM still watched, which goes.
    assert not (paths.vms / dropped).exists()
    assert (paths.vms / kept).exists(), "a released (kept) VM was removed"
    pid = _hypervisor(paths, kept)
    assert not _gone(pid)
    os.kill(pid, signal.SIGKILL)


def test_a_watchdog_with_nothing_to_do_exits_when_closed(paths: HostPaths, tmp_path: Path) -> None:
    dog = Watchdog.spawn(paths, tmp_path / "w.log")
    assert dog.alive
    dog.close(wait_s=10)
    assert _gone(dog.pid)
    assert "exits (everything removed)" in (tmp_path / "w.log").read_text()


def test_sigterm_to_the_watchdog_removes_now(paths: HostPaths, tmp_path: Path) -> None:
    name = _name("t1")
    vm_dir = paths.vms / name
    vm_dir.mkdir(parents=True)
    dog = Watchdog.spawn(paths, tmp_path / "w.log")
    dog.watch("qemu", name)
    time.sleep(0.5)
    os.kill(dog.pid, signal.SIGTERM)
    _wait(lambda: not vm_dir.exists(), 10)
    _wait(lambda: _gone(dog.pid), 10)
    dog.close(wait_s=1)


def test_an_unknown_provider_is_logged_and_not_fatal(paths: HostPaths) -> None:
    said: list[str] = []
    teardown = Teardown(paths, said.append)
    teardown.handle(json.dumps({"op": "watch", "vm": _name("u1"), "provider": "no-such"}))
    teardown.handle("not json")
    assert teardown.remove_all("test") == 1
    assert any("cannot rebuild provider 'no-such'" in line for line in said)
    assert any("not a watchdog message" in line for line in said)


# -- every provider: tart (through the tart stand-in) and Orchard (through the API stand-in) -------

PROVIDER_OWNER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from harness.config import HostPaths
    from harness.vm.watchdog import Watchdog
    from harness.host.run_label import VMName
    from harness.vm.registry import get_provider

    paths = HostPaths(cache=Path(sys.argv[1]), state=Path(sys.argv[2]))
    provider = get_provider(sys.argv[3], paths)
    name = VMName.new("unitdog")
    dog = Watchdog.spawn(paths, Path(sys.argv[5]))
    dog.watch(provider.name, str(name))
    provider.clone(sys.argv[4], name)
    provider.start(name)
    print(json.dumps({"vm": str(name), "watchdog": dog.pid}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _provider_owner(paths: HostPaths, provider: str, image: str, log: Path, env: dict[str, str]) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", PROVIDER_OWNER, str(paths.cache), str(paths.state), provider,
                           image, str(log)], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **env})
    assert done.returncode == -signal.SIGKILL and done.stdout.strip(), done.stderr
    said = json.loads(done.stdout.splitlines()[-1])
    return said["vm"], said["watchdog"]


def test_a_dead_owners_tart_vm_is_stopped_and_deleted(paths: HostPaths, tmp_path: Path) -> None:
    standin = StandinHome(tmp_path / "standin", backend="idle")
    try:
        standin.golden()
        env = {**{k: v for k, v in standin.env().items() if k.startswith("TART")},
               "HARNESS_TART_BIN": str(standin.shim), "HARNESS_TART_PASSWORD": "planted-tart-password"}
        vm, watchdog = _provider_owner(paths, "tart", "golden", tmp_path / "w.log", env)
        listed = lambda: {e["Name"]: e for e in json.loads(standin.tart("list", "--format", "json").stdout)}
        _wait(lambda: vm not in listed(), 10)
        _wait(lambda: _gone(watchdog), 10)
        log = (tmp_path / "w.log").read_text()
        assert f"removed {vm}" in log and "planted-tart-password" not in log
        assert "golden" in listed(), "the golden image must never be touched"
        assert not (paths.vms / vm).exists()
    finally:
        standin.close()


def test_a_dead_owners_orchard_vm_is_deleted_through_the_api(paths: HostPaths, tmp_path: Path) -> None:
    token = "planted-orchard-token"
    with OrchardStandin(token=token) as api:
        env = {"HARNESS_ORCHARD_URL": api.url, "HARNESS_ORCHARD_ACCOUNT": "harness", "HARNESS_ORCHARD_TOKEN": token}
        vm, watchdog = _provider_owner(paths, "orchard", "macos-clean", tmp_path / "w.log", env)
        _wait(lambda: ("DELETE", f"/v1/vms/{vm}") in api.requests, 10)
        _wait(lambda: _gone(watchdog), 10)
        assert vm not in api.vms
    log = (tmp_path / "w.log").read_text()
    assert f"removed {vm}" in log and token not in log
