"""The one label that marks a VM as a run's: its name and its lease.

The name, ``hns-<run id>-<owner pid>-<tag>``, is on everything a provider lists and every VM
directory, so a leftover is found by the name alone; a name that does not parse is never ours and
never touched. The lease, one small JSON file per VM under ``<state>/leases/`` written before the
VM is cloned and removed after it is deleted, adds what the name cannot: the owner's start time
(so a recycled pid is not mistaken for the owner), whether the VM is kept on purpose, and how to
log into it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil

VM_NAME_PREFIX = "hns"
_NAME_RE = re.compile(rf"^{VM_NAME_PREFIX}-(?P<run>[0-9a-z]+)-(?P<pid>\d+)-(?P<tag>[0-9a-z]+)$")


@dataclass(frozen=True)
class VMName:
    """``hns-<run id>-<owner pid>-<random tag>``: the reaper finds leftovers by prefix and dead pid."""

    run_id: str
    owner_pid: int
    tag: str

    def __str__(self) -> str:
        return f"{VM_NAME_PREFIX}-{self.run_id}-{self.owner_pid}-{self.tag}"

    @classmethod
    def new(cls, run_id: str, owner_pid: int | None = None) -> VMName:
        return cls(run_id=run_id, owner_pid=owner_pid or os.getpid(), tag=secrets.token_hex(3))

    @classmethod
    def parse(cls, text: str) -> VMName | None:
        """The name's parts, or None for a VM that is not ours (never touch those)."""
        match = _NAME_RE.match(text)
        if not match:
            return None
        return cls(run_id=match["run"], owner_pid=int(match["pid"]), tag=match["tag"])


def process_started_at(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def owner_alive(pid: int, started_at: float | None) -> bool:
    """True if ``pid`` runs and (when known) is the same process that started at ``started_at``."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # a start time that differs means the pid was recycled by an unrelated process
        return started_at is None or abs(process.create_time() - started_at) <= 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # another user's live process: not ours to judge


@dataclass(frozen=True)
class Lease:
    name: str
    provider: str
    image: str
    owner_pid: int
    owner_started_at: float | None
    created_at: float
    kept: bool = False
    ssh_command: str = ""
    artifacts: str = ""

    @classmethod
    def for_this_process(cls, name: str, provider: str, image: str, artifacts: str = "") -> Lease:
        pid = os.getpid()
        return cls(name, provider, image, pid, process_started_at(pid), time.time(),
                   artifacts=artifacts)

    def owner_is_alive(self) -> bool:
        return owner_alive(self.owner_pid, self.owner_started_at)


def owner_lives(name: VMName, lease: Lease | None) -> bool:
    """Whether the run that made VM ``name`` still runs: by its lease when it has one (which knows
    the owner's start time), else by the pid in its name."""
    return lease.owner_is_alive() if lease is not None else owner_alive(name.owner_pid, None)


class LeaseBook:
    """The lease files of one host (``HostPaths.state / "leases"``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def write(self, lease: Lease) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._path(lease.name).with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(lease), indent=1))
        tmp.replace(self._path(lease.name))  # atomic: a reader never sees half a lease

    def mark_kept(self, name: str, ssh_command: str) -> None:
        lease = self.get(name)
        if lease is not None:
            self.write(replace(lease, kept=True, ssh_command=ssh_command))

    def get(self, name: str) -> Lease | None:
        try:
            return Lease(**json.loads(self._path(name).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def all(self) -> list[Lease]:
        if not self.directory.is_dir():
            return []
        leases = (self.get(p.stem) for p in sorted(self.directory.glob("*.json")))
        return [lease for lease in leases if lease is not None]

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
