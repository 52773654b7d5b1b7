"""Who owns which VM: one small JSON file per VM under ``<state>/leases/``, written before the VM
is cloned and removed after it is deleted.

A VM's name already carries its owner's pid; the lease adds what the name cannot: the owner's
start time (so a recycled pid is not mistaken for the owner), whether the VM is being kept on
purpose, and how to log into it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil


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
