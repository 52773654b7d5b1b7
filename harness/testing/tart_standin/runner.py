"""``tart run`` in the stand-in: stay in the foreground until SIGINT, like tart.

Order of events, mirroring a Mac: the limit check (Apple's text on failure), the VM marked running,
the hypervisor started, a DHCP lease appears (before sshd is up, as on a real guest), the guest
becomes reachable on ``<lease>:<ssh port>`` unless Softnet blocks the host gateway, and on SIGINT
(or SIGTERM) the guest is powered off, its disk removed and the VM marked stopped.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from types import FrameType

from harness.ssh.relay import Relay
from harness.testing.tart_standin.guests import Guest, make_guest, wait_while_alive
from harness.testing.tart_standin.home import StandinError, TartHome, VMDir, random_mac
from harness.testing.tart_standin.network import SoftnetRules, relay_to

EXIT_STATE = 2
RELAY_BIND_ATTEMPTS = 50


def _say(text: str) -> None:
    print(text, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _Suspend(BaseException):
    """`tart suspend` asked this `run` process to save the VM and exit."""


def _suspend(signum: int, frame: FrameType | None) -> None:
    raise _Suspend


def _saved_config(config: dict[str, object]) -> dict[str, object]:
    """What a saved machine must match to be restored (Virtualization.framework checks it)."""
    return {k: config.get(k) for k in ("macAddress", "cpuCount", "memorySize")}


def _restore_or_discard(home: TartHome, vm: VMDir) -> bool:
    """tart's Run: a MAC in use by another running VM gets a new MAC and loses the saved state;
    otherwise a saved state is restored (and deleted). True when the VM resumes."""
    if not vm.state_path.exists():
        return False
    config = vm.config()
    mac = str(config.get("macAddress", ""))
    if any(o.name != vm.name and o.running() and o.config().get("macAddress") == mac for o in home.local_vms()):
        _say("There is already a running VM with the same MAC address!")
        _say("Resetting VM to assign a new MAC address...")
        vm.write_config({**config, "macAddress": random_mac()})
        vm.state_path.unlink(missing_ok=True)
        return False
    saved = json.loads(vm.state_path.read_text() or "{}")
    if saved.get("config") != _saved_config(config):
        raise StandinError("Failed to restore the VM's state: the configuration changed since it was saved")
    _say("restoring VM state from a snapshot...")
    vm.state_path.unlink()
    _say("resuming VM...")
    return True


def _take_run_lock(home: TartHome, vm: VMDir, limit: int, limit_message: str) -> int:
    with home.start_lock():
        if vm.running():
            raise StandinError(f'VM "{vm.name}" is already running', EXIT_STATE)
        if home.running_count() >= limit:
            raise StandinError(limit_message)
        fd = os.open(vm.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd


def _addresses_in_use(home: TartHome, vm: VMDir) -> set[str]:
    return {
        str(other.run_state().get("address"))
        for other in home.local_vms()
        if other.name != vm.name and other.run_state().get("address")
    }


def _open_relay(home: TartHome, vm: VMDir, mac: str, port: int, target: tuple[str, int]) -> tuple[str, Relay]:
    """Bind the lease's address; if someone holds it (another VM with the same MAC, a clone never
    randomised, or another stand-in home on this host), the lease moves to a fresh address, and
    ``tart ip`` of the other VM now answers wrongly, as on a Mac."""
    address = home.lease_for(mac) or home.assign_lease(mac, avoid=set())
    taken: set[str] = set()
    for _ in range(RELAY_BIND_ATTEMPTS):
        try:
            return address, relay_to((address, port), target)
        except OSError:
            taken.add(address)
            address = home.assign_lease(mac, avoid=taken | _addresses_in_use(home, vm))
    raise StandinError(f"no loopback address with a free port {port} after {RELAY_BIND_ATTEMPTS} tries")


def _serve(home: TartHome, vm: VMDir, guest: Guest, rules: SoftnetRules, ssh_port: int) -> Relay | None:
    config = vm.config()
    mac = str(config.get("macAddress", ""))
    state = {"pid": os.getpid(), "softnet": rules.enabled, "started": time.time()}
    vm.write_run_state(state)
    guest.start()
    # The guest's DHCP client asks early: the (possibly stale) lease is visible long before sshd.
    early = home.lease_for(mac) or home.assign_lease(mac, avoid=_addresses_in_use(home, vm))
    vm.write_run_state({**state, "address": early})
    boot_timeout = float(os.environ.get("TART_STANDIN_BOOT_TIMEOUT", "900"))
    target = guest.wait_ready(boot_timeout)
    if target is None:
        return None
    if not rules.host_can_reach_guest():
        _say("softnet: the host gateway is blocked; the host cannot reach this VM")
        return None
    address, relay = _open_relay(home, vm, mac, ssh_port, target)
    vm.write_run_state({**state, "address": address, "ssh_port": ssh_port})
    _say(f"guest ready at {address}:{ssh_port}")
    return relay


def run_vm(home: TartHome, vm: VMDir, rules: SoftnetRules, *, limit: int, ssh_port: int, limit_message: str,
           suspendable: bool = False) -> int:
    lock_fd = _take_run_lock(home, vm, limit, limit_message)
    # Explicitly: a shell's `&` starts background jobs with SIGINT ignored, and tart's contract
    # is that SIGINT stops the VM.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGUSR1, _suspend)
    try:
        resumed = _restore_or_discard(home, vm)
    except StandinError:
        os.close(lock_fd)
        raise
    # A restored stand-in guest is a warm QEMU clone: fast, like a resume (its memory is the
    # backing image's saved boot, not this VM's: the stand-in keeps no per-VM guest state).
    guest = make_guest(vm.config(), warm=resumed)
    relay: Relay | None = None
    code = 0
    try:
        relay = _serve(home, vm, guest, rules, ssh_port)
        wait_while_alive(guest)
        _say("guest powered off")
    except KeyboardInterrupt:
        _say("stopping (SIGINT)")
    except _Suspend:
        if not suspendable:  # tart: validateSaveRestoreSupport() fails, the process exits 1
            print("Error: failed to suspend: the VM was not started with --suspendable", file=sys.stderr, flush=True)
            code = 1
        else:
            _say("pausing VM to take a snapshot...")
            _say("creating a snapshot...")
            vm.state_path.write_text(json.dumps({"config": _saved_config(vm.config()), "saved": time.time()}))
            _say("snapshot created successfully! shutting down the VM...")
    except Exception as exc:  # noqa: BLE001 - tart reports any failure as text and exit 1
        print(f"Error: {exc}\n{guest.console_tail()}", file=sys.stderr, flush=True)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        if relay is not None:
            relay.close()
        try:
            guest.shutdown(timeout_s=20)
        finally:
            vm.run_path.unlink(missing_ok=True)
            os.close(lock_fd)
    return code
