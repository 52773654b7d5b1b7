"""Finds and removes what dead runs left behind: VMs whose owner process is gone, VM directories no
provider knows any more, and stale leases.

A VM is ours only if its name parses as a ``VMName``; anything else is never touched. A VM whose
owner still runs is left alone (that run cleans up after itself) unless it is named explicitly.
A VM kept on purpose (``--keep-vm``) survives the automatic reaping at session start and is removed
by ``harness gc --all-mine`` or ``harness gc --name NAME``.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from filelock import FileLock, Timeout

from harness.config import HostPaths
from harness.errors import HarnessError
from harness.host.leases import Lease, LeaseBook, owner_alive
from harness.vm.provider import Provider, VMInfo, VMName

STOP_TIMEOUT_S = 0.0  # leftovers are discarded: no graceful shutdown
LOCK_TIMEOUT_S = 120.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class ReapPolicy:
    include_kept: bool = False  # --all-mine
    names: frozenset[str] = field(default_factory=frozenset)  # --name: exactly these


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


def _why_reapable(name: VMName, lease: Lease | None, policy: ReapPolicy) -> str | None:
    """The reason to remove VM ``name``, or None to leave it alone."""
    if policy.names:
        return "asked for by name" if str(name) in policy.names else None
    if lease is not None:
        alive = lease.owner_is_alive()
    else:
        alive = owner_alive(name.owner_pid, None)
    if alive:
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
    providers: Iterable[Provider], paths: HostPaths, policy: ReapPolicy = ReapPolicy()
) -> list[Leftover]:
    leases = LeaseBook(paths.state / "leases")
    found: list[Leftover] = []
    listed: set[str] = set()
    for provider in providers:
        try:
            infos = provider.list()
        except HarnessError:
            continue  # a provider that cannot run here has nothing to reap here
        for info in infos:
            parsed = VMName.parse(info.name)
            if parsed is None:
                continue
            listed.add(info.name)
            reason = _why_reapable(parsed, leases.get(info.name), policy)
            if reason:
                found.append(Leftover(info.name, provider.name, reason))
    for directory in sorted(paths.vms.glob("*")) if paths.vms.is_dir() else []:
        parsed = VMName.parse(directory.name)
        if parsed is None or directory.name in listed or not directory.is_dir():
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


def _remove(leftover: Leftover, providers: dict[str, Provider], paths: HostPaths) -> None:
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
    providers: Iterable[Provider],
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
                present = {str(i.name) for p in providers for i in _safe_list(p)}
                present |= {d.name for d in paths.vms.glob("*")} if paths.vms.is_dir() else set()
                _forget_stale_leases(leases, present, policy)
                _forget_orphan_desk_logs(paths, present, leases)
            return outcomes
    except Timeout:
        say(f"another reaper holds {paths.state / 'reaper.lock'}; skipped")
        return []


def _safe_list(provider: Provider) -> list[VMInfo]:
    try:
        return provider.list()
    except HarnessError:
        return []
