"""The one reaper: decides which of the harness's VMs are dead and removes them.

What it judges carries the run label (:mod:`harness.host.run_label`): a VM a provider lists, or a
VM directory, whose name parses as a ``VMName``, and that VM's lease; anything else is never
touched. A VM is dead when its owner process is gone and it was not kept on purpose (``--keep-vm``,
``harness shell --keep``); a VM whose owner still runs is left alone (that run cleans up after
itself) unless it is named. Its callers differ only in the policy: the session start and a crashed
xdist worker remove the dead, ``harness gc`` the dead, with ``--all-mine`` the kept too and with
``--name`` exactly the VMs named, and a run's watchdog exactly the VMs its owner left behind.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil
from filelock import FileLock, Timeout

from harness.config import HostPaths
from harness.errors import HarnessError
from harness.host.run_label import Lease, LeaseBook, VMName, owner_alive, owner_lives

STOP_TIMEOUT_S = 0.0  # leftovers are discarded: no graceful shutdown
LOCK_TIMEOUT_S = 120.0

Say = Callable[[str], None]


class Listed(Protocol):
    """One line of a provider's ``list``."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...


class Reapable(Protocol):
    """What the reaper needs of a VM provider; every provider of ``harness.vm`` has it."""

    @property
    def name(self) -> str: ...

    def list(self) -> Sequence[Listed]: ...

    def stop(self, name: VMName, timeout_s: float = ...) -> None: ...

    def delete(self, name: VMName) -> None: ...


@dataclass(frozen=True)
class ReapPolicy:
    include_kept: bool = False  # --all-mine
    names: frozenset[str] = field(default_factory=frozenset)  # --name, a watchdog: exactly these
    why: str = "asked for by name"  # the reason a named VM goes, for the log


@dataclass(frozen=True)
class HarnessVM:
    """One of the harness's VMs as its provider lists it, with its label read."""

    name: VMName
    provider: str
    state: str
    lease: Lease | None

    @property
    def owner_alive(self) -> bool:
        return owner_lives(self.name, self.lease)

    @property
    def kept(self) -> bool:
        return self.lease is not None and self.lease.kept


@dataclass(frozen=True)
class Leftover:
    name: str
    provider: str  # "" for a directory no provider lists
    reason: str


@dataclass(frozen=True)
class ReapOutcome:
    leftover: Leftover
    removed: bool
    error: str = ""


def harness_vms(providers: Iterable[Reapable], leases: LeaseBook) -> list[HarnessVM]:
    """Every VM of ours the providers list; a provider that cannot run here lists nothing."""
    found: list[HarnessVM] = []
    for provider in providers:
        for info in _safe_list(provider):
            name = VMName.parse(info.name)
            if name is not None:
                found.append(HarnessVM(name, provider.name, info.state, leases.get(info.name)))
    return found


def _why_reapable(name: VMName, lease: Lease | None, policy: ReapPolicy) -> str | None:
    """The reason to remove VM ``name``, or None to leave it alone."""
    if policy.names:
        return policy.why if str(name) in policy.names else None
    if owner_lives(name, lease):
        return None
    if lease is not None and lease.kept:
        return "kept VM, owner gone" if policy.include_kept else None
    if lease is not None and _runs_as_another_process(lease.owner_pid):
        return f"owner pid {lease.owner_pid} was recycled by another process"
    return f"owner pid {name.owner_pid} is dead"


def _runs_as_another_process(pid: int) -> bool:
    """The pid is taken by a live process (the owner itself is known dead); a zombie is the
    dead owner not yet waited for by its parent, not a recycled pid."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def find_leftovers(
    providers: Iterable[Reapable], paths: HostPaths, policy: ReapPolicy = ReapPolicy()
) -> list[Leftover]:
    leases = LeaseBook(paths.state / "leases")
    listed = harness_vms(providers, leases)
    found = [Leftover(str(vm.name), vm.provider, reason) for vm in listed
             if (reason := _why_reapable(vm.name, vm.lease, policy))]
    listed_names = {str(vm.name) for vm in listed}
    for directory in sorted(paths.vms.glob("*")) if paths.vms.is_dir() else []:
        parsed = VMName.parse(directory.name)
        if parsed is None or directory.name in listed_names or not directory.is_dir():
            continue
        reason = _why_reapable(parsed, leases.get(directory.name), policy)
        if reason:
            found.append(Leftover(directory.name, "", f"orphaned directory; {reason}"))
    return found


def _remove_orphan_directory(directory: Path) -> None:
    """A VM directory no provider lists: stop a hypervisor still recorded in it, then delete it."""
    pid_file = directory / "qemu.pid"
    try:
        process = psutil.Process(int(pid_file.read_text().strip()))
        cmdline = " ".join(process.cmdline())
        # Only a hypervisor that names this directory: the pid may have been recycled.
        if "qemu" in cmdline and str(directory) in cmdline:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
    except (FileNotFoundError, ValueError, psutil.Error):
        pass
    shutil.rmtree(directory, ignore_errors=True)


def _remove(leftover: Leftover, providers: dict[str, Reapable], paths: HostPaths) -> None:
    name = VMName.parse(leftover.name)
    assert name is not None  # only parsable names become leftovers
    provider = providers.get(leftover.provider)
    if provider is not None:
        provider.stop(name, timeout_s=STOP_TIMEOUT_S)
        provider.delete(name)
    directory = paths.vms / leftover.name
    if directory.exists():
        _remove_orphan_directory(directory)
    # A desk VM's logs and host-key pin are useless once it is gone.
    shutil.rmtree(paths.desk / leftover.name, ignore_errors=True)


def _forget_stale_leases(leases: LeaseBook, present: set[str], policy: ReapPolicy) -> None:
    for lease in leases.all():
        if lease.name in present:
            continue
        if policy.names and lease.name in policy.names or not lease.owner_is_alive():
            leases.remove(lease.name)


def _forget_orphan_desk_logs(paths: HostPaths, present: set[str], leases: LeaseBook) -> None:
    """Logs of a desk VM that never came to be (its process died waiting for a slot)."""
    for directory in sorted(paths.desk.glob("*")) if paths.desk.is_dir() else []:
        name = VMName.parse(directory.name)
        if name is None or directory.name in present or leases.get(directory.name) is not None:
            continue
        if not owner_alive(name.owner_pid, None):
            shutil.rmtree(directory, ignore_errors=True)


def reap(
    providers: Iterable[Reapable],
    paths: HostPaths,
    policy: ReapPolicy = ReapPolicy(),
    *,
    dry_run: bool = False,
    say: Say = lambda line: None,
) -> list[ReapOutcome]:
    """Remove every leftover ``policy`` selects; never raises for one VM's failure."""
    providers = list(providers)
    by_name = {p.name: p for p in providers}
    paths.state.mkdir(parents=True, exist_ok=True)
    leases = LeaseBook(paths.state / "leases")
    try:
        # One reaper at a time per host: xdist workers start together and see the same leftovers.
        with FileLock(str(paths.state / "reaper.lock"), timeout=LOCK_TIMEOUT_S):
            leftovers = find_leftovers(providers, paths, policy)
            outcomes: list[ReapOutcome] = []
            for leftover in leftovers:
                where = leftover.provider or "disk"
                if dry_run:
                    say(f"would remove {leftover.name} ({where}): {leftover.reason}")
                    outcomes.append(ReapOutcome(leftover, removed=False))
                    continue
                try:
                    _remove(leftover, by_name, paths)
                except (HarnessError, OSError) as exc:
                    say(f"could not remove {leftover.name} ({where}): {exc}")
                    outcomes.append(ReapOutcome(leftover, removed=False, error=str(exc)))
                    continue
                leases.remove(leftover.name)
                say(f"removed {leftover.name} ({where}): {leftover.reason}")
                outcomes.append(ReapOutcome(leftover, removed=True))
            if not dry_run:
                present = {info.name for p in providers for info in _safe_list(p)}
                present |= {d.name for d in paths.vms.glob("*")} if paths.vms.is_dir() else set()
                _forget_stale_leases(leases, present, policy)
                _forget_orphan_desk_logs(paths, present, leases)
            return outcomes
    except Timeout:
        say(f"another reaper holds {paths.state / 'reaper.lock'}; skipped")
        return []


def _safe_list(provider: Reapable) -> Sequence[Listed]:
    try:
        return provider.list()
    except HarnessError:
        return []
