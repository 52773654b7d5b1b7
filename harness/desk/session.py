"""A clean VM for a developer: made, the release put in and verified, optionally installed.

    slot -> clone (warm where the provider can) -> start -> SSH -> [network opened on request]
         -> tarball copied in, sha256 checked against the host's -> [installer run] -> rc file

The VM is an ordinary harness VM (``hns-<run>-<pid>-<tag>``, a lease, the host's slot cap), so the
reaper, ``harness gc --list`` and ``harness gc --name`` know it. Its logs (command log, console
log, the host-key pin a later ``harness shell --name`` needs) live in ``<state>/desk/<name>/``
and go with the VM.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.config import HostPaths
from harness.desk.guest_shell import OFFLINE, ONLINE, RC_PATH, GuestShell
from harness.egress import make_attempts_visible
from harness.errors import UsageError
from harness.host.run_label import Lease, LeaseBook, VMName
from harness.host.slots import SlotPool
from harness.install.facts import GuestFacts, probe_guest
from harness.install.run import InstallerRun, run_installer
from harness.install.upload import UPLOAD_DIR, upload
from harness.ssh import SSHTransport
from harness.target import Target
from harness.vm.machine import Machine, MachineSettings
from harness.vm.provider import Provider, VMOptions
from harness.vm.registry import get_provider

DEFAULT_MAX_VMS = 2  # the host-wide cap every harness run shares (--max-vms of the suite)
REATTACH_TIMEOUT_S = 60.0

Say = Callable[[str], None]


def say_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def desk_dir(paths: HostPaths) -> Path:
    """Where desk VMs keep their logs and host-key pins (one directory per VM)."""
    return paths.desk


@dataclass(frozen=True)
class DeskVMSpec:
    """What VM to make: the image, the network, warm or cold, kept or not."""

    image: str
    run_id: str  # "shell" or "repro": the VM's name says which command made it
    online: bool = False
    keep: bool = False
    warm: bool = True
    capture_traffic: bool = False
    cpus: int = VMOptions.cpus
    memory_mb: int = VMOptions.memory_mb


def make_machine(spec: DeskVMSpec, provider: Provider, paths: HostPaths, say: Say = say_to_stderr) -> Machine:
    """A Machine (not started) for a desk session."""
    options = VMOptions(cpus=spec.cpus, memory_mb=spec.memory_mb, warm=spec.warm,
                        capture_traffic=spec.capture_traffic, online=spec.online)
    settings = MachineSettings(image=spec.image, run_id=spec.run_id, artifacts_root=desk_dir(paths),
                               keep="always" if spec.keep else "never", options=options)
    foreign = provider.foreign_running_count if provider.capabilities.foreign_vms else None
    return Machine(provider, settings, slots=SlotPool(paths.slots, DEFAULT_MAX_VMS, foreign),
                   paths=paths, say=say)


@dataclass(frozen=True)
class Prepared:
    """The release in the guest: where it is and what the guest is."""

    facts: GuestFacts
    release_path: str
    sha256: str
    network: str
    installer: InstallerRun | None = None


def open_network(machine: Machine) -> str:
    """The guest's way out for ``--online-for-debugging``: the provider left the network open;
    a slirp guest still needs a default route (a restricted network hands it none)."""
    return make_attempts_visible(machine)


def prepare(machine: Machine, target: Target, *, online: bool, install: bool, say: Say = say_to_stderr) -> Prepared:
    """Copy the release in (sha256 proven against the host's), install it if asked, write the rc file."""
    if online:
        say(f"harness: network OPEN for debugging ({open_network(machine)})")
    facts = probe_guest(machine)
    upload(machine, target.release, target.profile)
    guest_path = f"{UPLOAD_DIR}/{target.release.filename}"
    say(f"harness: {target.release.filename} copied to {guest_path}, sha256 {target.release.sha256} verified in the guest")
    installer = None
    if install:
        installer = install_now(machine, target, facts, say)
    network = ONLINE if online else OFFLINE
    write_rc(machine, GuestShell(network=network, release_path=guest_path, vm_name=str(machine.name)))
    return Prepared(facts, guest_path, target.release.sha256, network, installer)


def install_now(machine: Machine, target: Target, facts: GuestFacts, say: Say) -> InstallerRun:
    """The profile's installer, as the suite runs it; a failure is shown, not raised (the
    developer is here to look at exactly that)."""
    say(f"harness: running the {target.profile.name} installer ...")
    run = run_installer(machine, facts.bind(target.profile, target.release))
    if run.ok:
        say(f"harness: installed in {run.duration_s:.1f} s")
    else:
        state = f"timed out after {run.timeout_s:g} s" if run.timed_out else f"exited with {run.exit_code}"
        say(f"harness: the installer {state}; its last lines:\n{run.tail(15)}")
    return run


def write_rc(machine: Machine, shell: GuestShell) -> None:
    machine.write_text(RC_PATH, shell.rc_text())


def remove_logs(paths: HostPaths, name: VMName | str) -> None:
    """A desk VM that is gone leaves no logs behind either."""
    shutil.rmtree(desk_dir(paths) / str(name), ignore_errors=True)


# -- kept VMs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeptVM:
    """A VM kept on purpose, found again by its name from any process."""

    name: VMName
    lease: Lease
    provider: Provider

    @property
    def artifacts(self) -> Path:
        return Path(self.lease.artifacts)


def kept_names(paths: HostPaths) -> list[str]:
    return sorted(lease.name for lease in LeaseBook(paths.state / "leases").all() if lease.kept)


def find_kept(text: str, paths: HostPaths) -> KeptVM:
    """The kept VM called ``text``; a UsageError naming the kept VMs there are otherwise."""
    name = VMName.parse(text)
    if name is None:
        raise UsageError(f"'{text}' is not a harness VM name",
                         hint="harness VMs are named hns-<run>-<pid>-<tag>; `harness gc --list` shows them")
    lease = LeaseBook(paths.state / "leases").get(text)
    if lease is None or not lease.kept:
        known = kept_names(paths)
        why = "no VM of that name was kept on this host" if lease is None else (
            f"it belongs to a running harness process (pid {lease.owner_pid}) and goes when that ends")
        raise UsageError(
            f"{text} is not a kept VM: {why}",
            hint=("kept VMs: " + ", ".join(known)) if known else
            "no VM is kept here; make one with `harness shell --keep` or `harness repro RESULTS_DIR`",
        )
    provider = get_provider(lease.provider, paths)
    states = {info.name: info.state for info in provider.list()}
    state = states.get(text)
    if state != "running":
        raise UsageError(
            f"kept VM {text} is {state or 'gone'} at provider {lease.provider}",
            hint=f"remove what is left with `harness gc --name {text}` and make a new one",
        )
    return KeptVM(name, lease, provider)


def connect(kept: KeptVM, timeout_s: float = REATTACH_TIMEOUT_S) -> SSHTransport:
    """SSH into a kept VM with the host-key pin made when it was first reached."""
    endpoint = kept.provider.wait_ready(kept.name, timeout_s)
    return SSHTransport.connect(endpoint, known_hosts=kept.artifacts / "known_hosts",
                                log_path=kept.artifacts / "commands.log", deadline_s=timeout_s)
