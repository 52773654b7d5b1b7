"""Warm starts for QEMU guests: boot a clean image once, save the running machine, and start every
later clone from that saved state on its own copy-on-write overlay (issue 8).

    <image build>/image.qcow2                 clean base image (read-only)
      <- <image build>/warm/<key>/disk.qcow2  frozen layer: the template's disk at the instant of the save
           <- <vm dir>/overlay.qcow2          one per clone, thrown away with it
    <image build>/warm/<key>/state            the template's memory and devices (QMP ``migrate`` to a file)
    <image build>/warm/<key>/snapshot.json    what the snapshot was made from; checksum of ``state``

The key covers the image hash, QEMU's version, the accelerator and the QEMU command line a clone
will get (machine, CPU model, vCPUs, memory, kernel command line, devices): change any of them and
the next warm clone builds a new snapshot; snapshots of another QEMU version are removed.

A clone must still be a clean, independent machine. What it shares with its template is
deterministic (the boot itself: kernel log, boot id, hostname, DHCP address); what must be its own is
set by a one-shot agent the template left blocked on a virtio-serial port, before anyone can log in:
- SSH host key: the template's key is deleted before the save, so no clone can ever present it; the
  host makes each clone a fresh ed25519 key, hands it over the port and pins it for the connection;
- clock: the host's time, sent as the guest resumes (the guest has no network time);
- ``/etc/machine-id``: a fresh random id (daemons already running keep the template's in memory);
- entropy: QEMU's ``vmgenid`` device tells the kernel it was forked, which reseeds its RNG, and the
  agent mixes host random bytes into ``/dev/urandom`` as well.
The agent lives in ``/run`` (memory, never the disk) and exits after answering.

Every step has a deadline. Whatever goes wrong while restoring (damaged state file, QEMU refusing
it, a silent agent) ends in a cold boot of the same clone with a ``WarmStartWarning``, never a hang.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from filelock import FileLock, Timeout

from harness.errors import HarnessError, InfrastructureError
from harness.vm.host_tools import require_tool
from harness.vm.images import BuiltImage, utc_now
from harness.vm.provider import VMName, VMOptions
from harness.vm.qmp import QMPClient, connect_unix

if TYPE_CHECKING:
    from harness.vm.qemu import QemuProvider

# Part of every snapshot key: bump when the snapshot layout changes (the scripts below are
# hashed into the key as well, so editing them invalidates old snapshots by itself).
WARM_LAYOUT = "2"
SNAPSHOTS_DIR = "warm"
SNAPSHOT_FILE = "snapshot.json"
PLAN_FILE = "warm.json"
AGENT_SOCKET = "warm.sock"
AGENT_PORT = "org.portability-harness.warm"
AGENT_PATH = "/run/harness-warm/agent.sh"
PEM_END = "-----END OPENSSH PRIVATE KEY-----"
TEMPLATE_RUN_ID = "warm"

TEMPLATE_BOOT_TIMEOUT_S = 900.0
TEMPLATE_PREPARE_TIMEOUT_S = 300.0
SAVE_TIMEOUT_S = 180.0
LOAD_TIMEOUT_S = 60.0
AGENT_TIMEOUT_S = 60.0
BUILD_LOCK_TIMEOUT_S = 45 * 60.0
POLL_S = 0.02
HASH_BLOCK = 4 * 2**20

Role = Literal["template", "clone", "fallback"]


class WarmStartWarning(UserWarning):
    """A warm start was asked for but the VM booted cold (the warning says why)."""


class WarmRestoreFailed(InfrastructureError):
    """Restoring a clone from its snapshot failed; the caller boots the clone cold instead."""


# ---------------------------------------------------------------- the guest side

# POSIX sh (the image's /bin/sh is dash), builtins only but for `date`: under software emulation
# every exec costs tens of milliseconds. The port reads end-of-file while no host is connected,
# hence the retry; the host normally connects before the guest runs, so the read just blocks.
# Request: "<epoch> <machine-id> <seed>", the clone's SSH host key (OpenSSH PEM lines), its public
# line. Answer: "done" or "error <why>". The port is a private host<->guest channel, not a network.
AGENT_SCRIPT = f"""#!/bin/sh
# portability-harness warm-start agent: makes a resumed clone its own machine, then exits.
exec 3<> /dev/virtio-ports/{AGENT_PORT}
until read -r epoch machine_id seed <&3; do sleep 0.1; done
case "$epoch$machine_id$seed" in ""|*[!0-9a-f.]*) echo "error malformed request" >&3; exit 1;; esac
date -u -s "@$epoch" > /dev/null
printf '%s\\n' "$machine_id" > /etc/machine-id
printf '%s' "$seed" > /dev/urandom
key=/etc/ssh/ssh_host_ed25519_key
umask 077
: > "$key"
while read -r line <&3; do
  printf '%s\\n' "$line" >> "$key"
  [ "$line" = "{PEM_END}" ] && break
done
read -r public <&3
case "$public" in ssh-ed25519\\ *) ;; *) echo "error no host key" >&3; exit 1;; esac
umask 022
printf '%s\\n' "$public" > "$key.pub"
echo done >&3
rm -f "$0"
"""

# Run as root in the template, once it has booted, right before the save.
TEMPLATE_PREPARE = f"""set -eu
timeout 240 systemctl is-system-running --wait > /dev/null || true
install -d -m 0700 {os.path.dirname(AGENT_PATH)}
cat > {AGENT_PATH}
systemd-run --quiet --collect --unit=harness-warm-agent /bin/sh {AGENT_PATH}
rm -f /etc/ssh/ssh_host_*key /etc/ssh/ssh_host_*key.pub
systemctl is-active --quiet harness-warm-agent
"""


def warm_format() -> str:
    """The snapshot format: layout version plus what runs in the guest before and after the save."""
    scripts = hashlib.sha256((AGENT_SCRIPT + TEMPLATE_PREPARE).encode()).hexdigest()[:12]
    return f"{WARM_LAYOUT}-{scripts}"


def warm_devices() -> tuple[str, ...]:
    """QEMU arguments every warm VM (template and clone alike) carries: the agent's channel and
    the VM generation id that tells the guest kernel it was forked."""
    return (
        "-device", "vmgenid,guid=auto",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=warm,path={AGENT_SOCKET},server=on,wait=off",
        "-device", f"virtserialport,chardev=warm,name={AGENT_PORT}",
    )


@dataclass(frozen=True)
class Personalization:
    """What makes one clone its own machine. The host key is made here, not in the guest: an
    ed25519 key costs microseconds on the host against an exec of ssh-keygen under emulation, and
    the host then knows the key to expect before the first connection (no trust on first use)."""

    machine_id: str
    seed: str
    host_key_private: str  # OpenSSH PEM
    host_key_public: str  # "ssh-ed25519 AAAA..."

    @classmethod
    def new(cls) -> Personalization:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        return cls(machine_id=uuid.uuid4().hex, seed=secrets.token_hex(32),
                   host_key_private=private, host_key_public=public)

    def request(self, epoch: float) -> bytes:
        return (f"{epoch:.6f} {self.machine_id} {self.seed}\n{self.host_key_private.rstrip()}\n"
                f"{self.host_key_public}\n").encode()


def check_agent_reply(text: str) -> None:
    """The agent's answer must be ``done``; anything else is a failed personalisation."""
    if text.strip() != "done":
        raise WarmRestoreFailed(f"the warm-start agent answered {text.strip()[:200]!r} instead of 'done'")


# ---------------------------------------------------------------- snapshots


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


# ---------------------------------------------------------------- per-VM plan


@dataclass(frozen=True)
class WarmPlan:
    """``warm.json`` in a VM's directory: how this VM starts and how its start went."""

    role: Role
    snapshot: str = ""  # directory of the snapshot a clone restores
    key: str = ""
    reason: str = ""  # why a warm start became a cold one
    host_key: str = ""  # the clone's own SSH host public key, made by the host
    machine_id: str = ""  # the clone's /etc/machine-id
    resumed: bool = False  # the clone really started from the saved machine
    base_disk: str = ""  # the clean image a clone falls back to
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, vm_dir: Path) -> WarmPlan | None:
        try:
            return cls(**json.loads((vm_dir / PLAN_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, vm_dir: Path) -> None:
        partial = vm_dir / f"{PLAN_FILE}.tmp"
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(vm_dir / PLAN_FILE)


@dataclass(frozen=True)
class StartMode:
    """How a VM actually started, for the journal and the report."""

    used: Literal["warm", "cold"]
    requested: bool
    detail: str = ""

    @property
    def label(self) -> str:
        if self.used == "warm":
            return "warm"
        return f"cold (warm start failed: {self.detail})" if self.requested else "cold"


def record_fallback(vm_dir: Path, reason: str, warn: bool = True) -> None:
    """A warm start asked for, a cold boot made: say why in the VM's plan (and as a warning)."""
    WarmPlan(role="fallback", reason=reason).save(vm_dir)
    if warn:
        warnings.warn(WarmStartWarning(f"{vm_dir.name}: booting cold: {reason}"), stacklevel=3)


def planned_start_mode(vm_dir: Path, requested: bool) -> StartMode:
    """How the VM in ``vm_dir`` started, from its plan (no plan: a cold boot as asked)."""
    plan = WarmPlan.load(vm_dir)
    if plan is not None and plan.role == "clone" and plan.resumed:
        return StartMode("warm", requested=True, detail=f"saved machine {plan.key}")
    if plan is not None and plan.role == "fallback":
        return StartMode("cold", requested=True, detail=plan.reason)
    return StartMode("cold", requested=requested)


def start_mode(provider: object, name: VMName | str) -> StartMode:
    """How ``name`` started; providers without warm starts always boot cold."""
    describe = getattr(provider, "start_mode", None)
    if describe is None:
        return StartMode("cold", requested=False)
    mode: StartMode = describe(name)
    return mode


def start_mode_record_data(mode: StartMode, vm_name: str, image: str) -> dict[str, Any]:
    """``meta`` journal data: the report lists ``extra`` items among the run's facts."""
    extra: dict[str, str] = {f"vm start ({image})": mode.used}
    if mode.requested and mode.used == "cold":
        extra[f"warm start fell back to cold ({vm_name})"] = mode.detail
    return {"vm_start": {"vm": vm_name, **asdict(mode)}, "extra": extra}


# ---------------------------------------------------------------- QEMU integration


class WarmStarts:
    """The QEMU provider's warm-start hooks: which disk a clone sits on, which arguments its QEMU
    gets, how it is resumed, and how it falls back to a cold boot."""

    def __init__(self, store: SnapshotStore | None = None) -> None:
        self.store = store or SnapshotStore()
        # Keys already worked out in this process: asking QEMU for its version costs ~40 ms a time.
        self._keys: dict[tuple[object, ...], SnapshotKey] = {}

    # -- clone --------------------------------------------------------------------------------

    def snapshot_key(self, provider: QemuProvider, built: BuiltImage, options: VMOptions) -> SnapshotKey:
        from harness.vm.accel import ACCEL_ENV

        binary = Path(require_tool("qemu-system-x86_64", "boot Linux guests"))
        installed = binary.stat()  # an upgrade in mid-run changes these
        memo = (built.directory, options.cpus, options.memory_mb, str(binary), installed.st_mtime_ns,
                installed.st_size, os.environ.get(ACCEL_ENV, ""))
        if memo not in self._keys:
            self._keys[memo] = self._work_out_key(provider, built, options, binary)
        return self._keys[memo]

    @staticmethod
    def _work_out_key(provider: QemuProvider, built: BuiltImage, options: VMOptions, binary: Path) -> SnapshotKey:
        from harness.vm.accel import choose_accel, qemu_version
        from harness.vm.qemu import QemuLaunch, qemu_command

        accel = choose_accel(provider.paths)
        # The clone's command line with everything per-VM replaced by a constant.
        launch = QemuLaunch(
            name="warm", vm_dir=Path("/vm"), kernel=built.kernel, initrd=built.initrd,
            kernel_cmdline=built.kernel_cmdline, ssh_port=0, accel_args=accel.qemu_args,
            options=VMOptions(cpus=options.cpus, memory_mb=options.memory_mb), extra_args=warm_devices(),
        )
        signature = hashlib.sha256("\0".join(qemu_command("qemu", launch)).encode()).hexdigest()
        version = qemu_version(str(binary))
        return SnapshotKey(image=built.name, image_hash=built.content_hash, qemu_version=version,
                           accel=accel.name, launch_signature=signature)

    def prepare_clone(self, provider: QemuProvider, image: str, built: BuiltImage,
                      options: VMOptions, vm_dir: Path) -> Path:
        """The disk a new clone's overlay sits on: the snapshot's frozen layer, or (after a warning)
        the clean base image when no snapshot can be had."""
        try:
            key = self.snapshot_key(provider, built, options)
            snapshot = self.store.ensure(built, key, lambda work: build_snapshot(provider, image, options, work))
        except HarnessError as exc:
            self.record_fallback(vm_dir, f"no warm snapshot: {exc.message}")
            return built.disk
        WarmPlan(role="clone", snapshot=str(snapshot.directory), key=key.digest, base_disk=str(built.disk)).save(vm_dir)
        return snapshot.disk

    # -- start --------------------------------------------------------------------------------

    def launch_args(self, vm_dir: Path) -> tuple[str, ...]:
        """QEMU arguments for this VM's next start. A clone whose snapshot went away since it was
        cloned (quarantined by another clone, pruned) is moved onto the base image first."""
        plan = WarmPlan.load(vm_dir)
        if plan is not None and plan.role == "clone" and plan.base_disk:
            snapshot = Snapshot.load(Path(plan.snapshot))
            problem = "it is gone" if snapshot is None else snapshot.problem()
            if problem is not None:
                self.fall_back(vm_dir, Path(plan.base_disk), f"snapshot {plan.key} unusable: {problem}")
                return ()
        if plan is None or plan.role == "fallback":
            return ()
        if plan.role == "template":
            return warm_devices()
        # -S: stay paused after loading, so nothing runs before the state file is proven intact.
        return (*warm_devices(), "-S", "-incoming", "defer")

    def resume(self, vm_dir: Path, process: subprocess.Popen[bytes]) -> None:
        """Load a clone's state, prove it intact, run it and personalise it; WarmRestoreFailed if
        any step fails or overruns its deadline. A cold VM passes through untouched."""
        plan = WarmPlan.load(vm_dir)
        if plan is None or plan.role != "clone":
            return
        snapshot = Snapshot.load(Path(plan.snapshot))
        if snapshot is None or (problem := snapshot.problem()) is not None:
            raise WarmRestoreFailed(f"snapshot {plan.snapshot} is unusable: "
                                    f"{'unreadable' if snapshot is None else problem}")
        timings: dict[str, float] = {}
        started = time.monotonic()
        personal = Personalization.new()
        # The check of the state file overlaps with loading and personalising; the guest runs
        # meanwhile, but nobody can log in before it has passed.
        checksum = BackgroundChecksum(snapshot.state)
        try:
            with connect_unix(vm_dir / AGENT_SOCKET, timeout_s=5.0) as agent, \
                    QMPClient(vm_dir / "qmp.sock", timeout_s=10.0) as qmp:
                qmp.execute("migrate-incoming", uri=f"exec:cat {shlex.quote(str(snapshot.state))}")
                _wait_loaded(qmp, process, LOAD_TIMEOUT_S)
                timings["loaded_s"] = round(time.monotonic() - started, 3)
                qmp.execute("cont")
                agent.sendall(personal.request(time.time()))
                check_agent_reply(_read_reply(agent, process, AGENT_TIMEOUT_S))
                timings["personalized_s"] = round(time.monotonic() - started, 3)
                if checksum.result(LOAD_TIMEOUT_S) != snapshot.state_crc32:
                    raise WarmRestoreFailed("checksum mismatch")
                timings["verified_s"] = round(time.monotonic() - started, 3)
        except (OSError, ValueError, HarnessError) as exc:
            raise WarmRestoreFailed(self._diagnose(snapshot, checksum, process, vm_dir, exc)) from exc
        WarmPlan(role="clone", snapshot=plan.snapshot, key=plan.key, host_key=personal.host_key_public,
                 machine_id=personal.machine_id, resumed=True, base_disk=plan.base_disk, timings=timings).save(vm_dir)

    def _diagnose(self, snapshot: Snapshot, checksum: BackgroundChecksum, process: subprocess.Popen[bytes],
                  vm_dir: Path, exc: BaseException) -> str:
        """Why a restore failed; a snapshot at fault is taken out of use so the next clone rebuilds."""
        try:
            damaged = checksum.result(LOAD_TIMEOUT_S) != snapshot.state_crc32
        except WarmRestoreFailed:
            damaged = True
        if damaged:
            self.store.quarantine(snapshot)
            return f"state file {snapshot.state} does not match its checksum (damaged); snapshot taken out of use"
        if process.poll() is not None:
            self.store.quarantine(snapshot)
            return f"QEMU refused the saved state (exit {process.returncode}): {_tail(vm_dir / 'qemu.log')}"
        message = exc.message if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
        return f"restoring failed: {message}"

    def fall_back(self, vm_dir: Path, base_disk: Path, reason: str) -> None:
        """Put a clone on the clean base image instead of the snapshot (QEMU already gone)."""
        qemu_img = require_tool("qemu-img", "create a VM's copy-on-write disk")
        overlay = vm_dir / "overlay.qcow2"
        overlay.unlink(missing_ok=True)
        subprocess.run(
            [qemu_img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base_disk), str(overlay)],
            check=True, capture_output=True, text=True, timeout=60,
        )
        self.record_fallback(vm_dir, reason)

    @staticmethod
    def record_fallback(vm_dir: Path, reason: str) -> None:
        record_fallback(vm_dir, reason)

    @staticmethod
    def host_key(vm_dir: Path) -> str | None:
        """The host public key a warm clone was given, or None (cold VMs make their own)."""
        plan = WarmPlan.load(vm_dir)
        return plan.host_key if plan is not None and plan.host_key else None

    @staticmethod
    def mode(vm_dir: Path, requested: bool) -> StartMode:
        return planned_start_mode(vm_dir, requested)


def _wait_loaded(qmp: QMPClient, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConnectionError("QEMU exited while loading the state")
        status = qmp.execute("query-status")["status"]
        if status != "inmigrate":
            if status not in ("paused", "prelaunch", "postmigrate"):
                raise WarmRestoreFailed(f"QEMU is '{status}' after loading the state, expected paused")
            return
        time.sleep(POLL_S)
    raise WarmRestoreFailed(f"loading the saved state took longer than {timeout_s:.0f}s")


def _read_reply(sock: socket.socket, process: subprocess.Popen[bytes], timeout_s: float) -> str:
    """One line from the agent, within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WarmRestoreFailed(f"the warm-start agent did not answer within {timeout_s:.0f}s")
        if process.poll() is not None:
            raise ConnectionError("QEMU exited while the agent worked")
        sock.settimeout(min(remaining, 1.0))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            raise WarmRestoreFailed("the warm-start agent's channel closed without an answer")
        data += chunk
    return data.decode(errors="replace")


def _tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip() or "(no output)"
    except OSError:
        return "(no output)"


# ---------------------------------------------------------------- building a snapshot


def build_snapshot(provider: QemuProvider, image: str, options: VMOptions, work: Path) -> None:
    """Boot a template VM cold, prepare it, save it into ``work/state`` and keep its disk as
    ``work/disk.qcow2``. The template is an ordinary harness VM meanwhile (the reaper removes it if
    this process dies)."""
    from harness.ssh import SSHTransport

    name = VMName.new(TEMPLATE_RUN_ID)
    template_options = VMOptions(cpus=options.cpus, memory_mb=options.memory_mb)
    vm_dir = provider.vm_dir(name)
    try:
        provider.clone(image, name, template_options)
        WarmPlan(role="template").save(vm_dir)
        provider.start(name)
        # Connected before the guest runs the agent, so its read blocks instead of polling.
        with connect_unix(vm_dir / AGENT_SOCKET, timeout_s=5.0):
            endpoint = provider.wait_ready(name, TEMPLATE_BOOT_TIMEOUT_S)
            with SSHTransport.connect(endpoint, known_hosts=vm_dir / "known_hosts",
                                      log_path=vm_dir / "commands.log", deadline_s=120.0) as ssh:
                ssh.run(f"sudo -n sh -c {shlex.quote(TEMPLATE_PREPARE)}", timeout=TEMPLATE_PREPARE_TIMEOUT_S,
                        stdin=AGENT_SCRIPT.encode(), check=True)
            _save_running_machine(provider, name, work / "state")
        provider.vm_dir(name).joinpath("overlay.qcow2").rename(work / "disk.qcow2")
    except HarnessError as exc:
        raise InfrastructureError(
            f"building the warm snapshot of {image} failed: {exc.message}",
            hint=f"the template's logs are in {vm_dir} until it is deleted; --cold skips warm starts",
            detail=exc.detail,
        ) from exc
    finally:
        provider.delete(name)


def _save_running_machine(provider: QemuProvider, name: VMName, state: Path) -> None:
    vm_dir = provider.vm_dir(name)
    with QMPClient(vm_dir / "qmp.sock", timeout_s=10.0) as qmp:
        qmp.execute("stop")
        qmp.execute("migrate", uri=f"exec:cat > {shlex.quote(str(state))}")
        deadline = time.monotonic() + SAVE_TIMEOUT_S
        while True:
            status = qmp.execute("query-migrate").get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled") or time.monotonic() > deadline:
                raise InfrastructureError(f"saving the template's state ended '{status}'",
                                          hint=f"see {vm_dir / 'qemu.log'}")
            time.sleep(POLL_S * 5)
        qmp.execute("quit")
    provider.stop(name, timeout_s=0)
