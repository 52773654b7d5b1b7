"""Warm snapshots on disk: what a saved machine depends on (its key), the files it is (frozen disk
layer, state, metadata), and the store that builds each one once under a file lock."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from harness.errors import InfrastructureError
from harness.images.store import BuiltImage, utc_now
from harness.vm.qemu.warm_agent import AGENT_SCRIPT, TEMPLATE_PREPARE
from harness.vm.warm.plan import WarmRestoreFailed

# Part of every snapshot key: bump when the snapshot layout changes (the guest-side scripts are
# hashed into the key as well, so editing them invalidates old snapshots by itself).
WARM_LAYOUT = "2"
SNAPSHOTS_DIR = "warm"
SNAPSHOT_FILE = "snapshot.json"
BUILD_LOCK_TIMEOUT_S = 45 * 60.0
HASH_BLOCK = 4 * 2**20


def warm_format() -> str:
    """The snapshot format: layout version plus what runs in the guest before and after the save."""
    scripts = hashlib.sha256((AGENT_SCRIPT + TEMPLATE_PREPARE).encode()).hexdigest()[:12]
    return f"{WARM_LAYOUT}-{scripts}"


@dataclass(frozen=True)
class SnapshotKey:
    """Everything a saved machine depends on; any change means a new snapshot."""

    image: str
    image_hash: str
    qemu_version: str
    accel: str
    launch_signature: str
    format: str = field(default_factory=lambda: warm_format())

    @property
    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Snapshot:
    """A finished snapshot; its files are never modified after it was renamed into place."""

    directory: Path
    key: SnapshotKey
    state_crc32: str
    state_bytes: int
    disk_bytes: int
    built_at: str
    build_seconds: float

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def state(self) -> Path:
        return self.directory / "state"

    @classmethod
    def load(cls, directory: Path) -> Snapshot | None:
        try:
            data = json.loads((directory / SNAPSHOT_FILE).read_text())
            return cls(directory=directory, key=SnapshotKey(**data.pop("key")), **data)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def save(self) -> None:
        data = asdict(self)
        data.pop("directory")
        (self.directory / SNAPSHOT_FILE).write_text(json.dumps(data, indent=2) + "\n")

    def problem(self) -> str | None:
        """Why this snapshot cannot be used (files gone or resized), or None."""
        for path, size in ((self.state, self.state_bytes), (self.disk, self.disk_bytes)):
            try:
                actual = path.stat().st_size
            except OSError:
                return f"{path} is missing"
            if actual != size:
                return f"{path} is {actual} bytes, {size} when it was made"
        return None


Builder = Callable[[Path], None]
"""Fills a directory with ``disk.qcow2`` and ``state``."""


class SnapshotStore:
    """Snapshots next to the image build they belong to; one builder per key at a time."""

    def __init__(self, root: Callable[[BuiltImage], Path] | None = None,
                 lock_timeout_s: float = BUILD_LOCK_TIMEOUT_S) -> None:
        self._root = root or (lambda built: built.directory / SNAPSHOTS_DIR)
        self.lock_timeout_s = lock_timeout_s

    def root(self, built: BuiltImage) -> Path:
        return self._root(built)

    def find(self, built: BuiltImage, key: SnapshotKey) -> Snapshot | None:
        snapshot = Snapshot.load(self.root(built) / key.digest)
        if snapshot is None or snapshot.key != key or snapshot.problem() is not None:
            return None
        return snapshot

    def ensure(self, built: BuiltImage, key: SnapshotKey, build: Builder) -> Snapshot:
        """The snapshot for ``key``, built first if needed; concurrent callers wait on a file lock."""
        if (found := self.find(built, key)) is not None:
            return found
        root = self.root(built)
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(root / f"{key.digest}.lock"), timeout=self.lock_timeout_s)
        try:
            with lock:
                if (found := self.find(built, key)) is not None:
                    return found  # another builder finished while we waited
                return self._build(root, key, build)
        except Timeout as exc:
            raise InfrastructureError(
                f"waited {self.lock_timeout_s:.0f}s for another process to build warm snapshot {key.digest}",
                hint=f"look for a hung builder holding {lock.lock_file}; --cold skips warm starts",
            ) from exc

    def _build(self, root: Path, key: SnapshotKey, build: Builder) -> Snapshot:
        final = root / key.digest
        for leftover in root.glob(f".building-{key.digest}-*"):  # builders that died; we hold the lock
            self._discard(leftover)
        work = root / f".building-{key.digest}-{os.getpid()}"
        work.mkdir()
        started = time.monotonic()
        try:
            build(work)
            snapshot = Snapshot(
                directory=work, key=key, state_crc32=crc32_file(work / "state"),
                state_bytes=(work / "state").stat().st_size, disk_bytes=(work / "disk.qcow2").stat().st_size,
                built_at=utc_now(), build_seconds=round(time.monotonic() - started, 1),
            )
            snapshot.save()
            (work / "disk.qcow2").chmod(0o444)  # clones' overlays read it; nothing may write it
            (work / "state").chmod(0o444)
            if final.exists():  # damaged or stale leftovers of the same key
                self._discard(final)
            work.rename(final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        self._prune_unloadable(root, key)
        loaded = Snapshot.load(final)
        assert loaded is not None
        return loaded

    def _prune_unloadable(self, root: Path, key: SnapshotKey) -> None:
        """Snapshots of another QEMU version or snapshot format will never be restored by this
        host's QEMU and harness again: remove them. Running clones keep their backing file open,
        and a clone not started yet boots cold (``launch_args``)."""
        for directory in root.iterdir():
            other = Snapshot.load(directory) if directory.is_dir() else None
            if other is not None and (other.key.qemu_version, other.key.format) != (key.qemu_version, key.format):
                self._discard(directory)

    def quarantine(self, snapshot: Snapshot) -> None:
        """Take a snapshot that failed to restore out of use; the next warm clone builds a new one."""
        try:
            snapshot.directory.rename(snapshot.directory.with_name(f".bad-{snapshot.directory.name}-{os.getpid()}"))
        except OSError:
            pass  # already gone: another clone quarantined it first

    @staticmethod
    def _discard(directory: Path) -> None:
        for path in directory.iterdir():
            path.chmod(0o644)
        shutil.rmtree(directory, ignore_errors=True)


def crc32_file(path: Path) -> str:
    """CRC-32 of a file: catches a damaged or truncated state file at a third of sha256's cost
    (the cache is ours, so accidents are the threat, not forgery)."""
    crc = 0
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


class BackgroundChecksum:
    """``crc32_file`` computed in a thread (zlib releases the GIL), to overlap with QEMU's work."""

    def __init__(self, path: Path) -> None:
        self._result: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="warm-state-hash", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._result = crc32_file(path)
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self._error = exc

    def result(self, timeout_s: float) -> str:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise WarmRestoreFailed(f"checksumming the state file took longer than {timeout_s:.0f}s")
        if self._error is not None:
            raise WarmRestoreFailed(f"cannot read the state file: {self._error}")
        assert self._result is not None
        return self._result
