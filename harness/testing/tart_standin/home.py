"""The stand-in's ``$TART_HOME``: tart's on-disk layout plus the stand-in's own bookkeeping.

Layout (tart's, where tart has one):
    $TART_HOME/vms/<name>/config.json      tart's VM config (os, cpuCount, memorySize, macAddress, ...)
    $TART_HOME/vms/<name>/disk.img         sparse file of the VM's disk size (the stand-in's guest
                                           disk is a QEMU overlay made at ``run`` time instead)
    $TART_HOME/vms/<name>/nvram.bin
    $TART_HOME/vms/<name>/state.vzvmsave   a suspended VM's saved state (the stand-in saves the
                                           config it was made with; its guest resumes warm)
    $TART_HOME/cache/OCIs/<host>/<path>/<tag>/   pulled images
Stand-in only:
    $TART_HOME/vms/<name>/standin-run.lock  flock held by the ``run`` process: "running" means held
    $TART_HOME/vms/<name>/standin-run.json  pid, address, SSH relay port of the running VM
    $TART_HOME/standin-leases.json          the "DHCP" lease table, MAC -> address, never shrinks
    $TART_HOME/standin-registry.json        remote image name -> backing image, for ``clone``/``pull``
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEASE_NETWORK = "127.77"  # one loopback address per VM: 127.77.<block>.<n>
DEFAULT_DISK_GB = 50


class StandinError(Exception):
    """An error tart itself would report; ``exit_code`` follows tart (2: not found/state, 1: other)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def random_mac() -> str:
    # Locally administered, unicast (like Virtualization.framework's random MACs).
    octets = [0x02 | (secrets.randbits(8) & 0xFC)] + [secrets.randbits(8) for _ in range(5)]
    return ":".join(f"{o:02x}" for o in octets)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


@dataclass(frozen=True)
class VMDir:
    name: str
    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def disk_path(self) -> Path:
        return self.path / "disk.img"

    @property
    def lock_path(self) -> Path:
        return self.path / "standin-run.lock"

    @property
    def run_path(self) -> Path:
        return self.path / "standin-run.json"

    @property
    def state_path(self) -> Path:
        return self.path / "state.vzvmsave"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def config(self) -> dict[str, Any]:
        return dict(_read_json(self.config_path, {}))

    def write_config(self, config: dict[str, Any]) -> None:
        _write_json(self.config_path, config)

    def running(self) -> bool:
        """Held run lock = running; the kernel drops it when the ``run`` process dies."""
        if not self.lock_path.exists():
            return False
        fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def run_state(self) -> dict[str, Any]:
        return dict(_read_json(self.run_path, {})) if self.running() else {}

    def write_run_state(self, state: dict[str, Any]) -> None:
        _write_json(self.run_path, state)

    def disk_gb(self) -> int:
        try:
            return round(self.disk_path.stat().st_size / 1e9)
        except FileNotFoundError:
            return 0

    def size_on_disk_gb(self) -> float:
        total = sum(p.stat().st_blocks * 512 for p in self.path.iterdir() if p.is_file())
        return total / 1e9

    def accessed(self) -> str:
        stamp = self.config_path.stat().st_atime if self.exists() else time.time()
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


class TartHome:
    """One ``$TART_HOME``; every mutation of shared tables happens under a file lock."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_env(cls) -> TartHome:
        root = os.environ.get("TART_HOME") or str(Path.home() / ".tart")
        return cls(Path(root))

    def vm(self, name: str) -> VMDir:
        if not name or "/" in name or name.startswith("."):
            raise StandinError(f'"{name}" is not a valid local VM name')
        return VMDir(name, self.root / "vms" / name)

    def local_vms(self) -> list[VMDir]:
        base = self.root / "vms"
        if not base.is_dir():
            return []
        return sorted((VMDir(p.name, p) for p in base.iterdir() if (p / "config.json").is_file()), key=lambda v: v.name)

    def running_count(self) -> int:
        return sum(1 for vm in self.local_vms() if vm.running())

    @contextmanager
    def start_lock(self) -> Iterator[None]:
        """Serialises the limit check and the run-lock grab of concurrent ``run`` processes."""
        with file_lock(self.root / ".standin-start.lock"):
            yield

    # -- images ----------------------------------------------------------------------------

    def create_vm(self, vm: VMDir, config: dict[str, Any], disk_gb: int) -> None:
        """Write a VM directory, replacing whatever was there without a word (tart's clone does)."""
        staging = vm.path.with_name(f".{vm.path.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _write_json(staging / "config.json", config)
        with (staging / "disk.img").open("wb") as disk:
            disk.truncate(disk_gb * 10**9)
        (staging / "nvram.bin").write_bytes(b"")
        shutil.rmtree(vm.path, ignore_errors=True)
        os.replace(staging, vm.path)

    def registry(self) -> dict[str, dict[str, Any]]:
        return dict(_read_json(self.root / "standin-registry.json", {}))

    def register_remote(self, remote: str, config: dict[str, Any]) -> None:
        with file_lock(self.root / ".standin-registry.lock"):
            entries = self.registry()
            entries[remote] = config
            self.root.mkdir(parents=True, exist_ok=True)
            _write_json(self.root / "standin-registry.json", entries)

    def oci_dir(self, remote: str) -> VMDir:
        repository, _, tag = remote.rpartition(":") if ":" in remote.split("/")[-1] else (remote, "", "latest")
        return VMDir(remote, self.root / "cache" / "OCIs" / repository / (tag or "latest"))

    def oci_vms(self) -> list[VMDir]:
        base = self.root / "cache" / "OCIs"
        if not base.is_dir():
            return []
        found = []
        for config in base.rglob("config.json"):
            tag_dir = config.parent
            repository = tag_dir.parent.relative_to(base).as_posix()
            found.append(VMDir(f"{repository}:{tag_dir.name}", tag_dir))
        return sorted(found, key=lambda v: v.name)

    # -- the "DHCP" lease table --------------------------------------------------------------

    def _leases_path(self) -> Path:
        return self.root / "standin-leases.json"

    def lease_for(self, mac: str) -> str | None:
        return dict(_read_json(self._leases_path(), {})).get(mac.lower())

    def assign_lease(self, mac: str, avoid: set[str]) -> str:
        """The MAC's existing lease unless it is in ``avoid``; else the next unused address."""
        with file_lock(self.root / ".standin-leases.lock"):
            leases: dict[str, str] = dict(_read_json(self._leases_path(), {}))
            current = leases.get(mac.lower())
            if current and current not in avoid:
                return current
            used = set(leases.values()) | avoid
            # Each home starts in its own block, so two stand-in homes on one host rarely collide.
            block = zlib.crc32(str(self.root).encode()) % 250
            for index in range(250 * 250):
                address = f"{LEASE_NETWORK}.{(block + index // 250) % 250}.{index % 250 + 2}"
                if address not in used:
                    leases[mac.lower()] = address
                    _write_json(self._leases_path(), leases)
                    return address
        raise StandinError("the stand-in's lease table is full")
