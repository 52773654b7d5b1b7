"""Warm starts for QEMU guests: boot a clean image once, save the running machine, and start every
later clone from that saved state on its own copy-on-write overlay.

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
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Protocol

from harness.config import HostPaths
from harness.errors import HarnessError, InfrastructureError
from harness.host.run_label import VMName
from harness.host.tools import require_tool
from harness.images.store import BuiltImage
from harness.ssh.endpoint import SSHEndpoint
from harness.vm.provider import StartMode, VMOptions
from harness.vm.qemu import accel as qemu_accel
from harness.vm.qemu.launch import QemuLaunch, qemu_command
from harness.vm.qemu.qmp import QMPClient, connect_unix
from harness.vm.qemu.snapshots import BackgroundChecksum, Snapshot, SnapshotKey, SnapshotStore
from harness.vm.qemu.warm_agent import (
    AGENT_SCRIPT,
    AGENT_SOCKET,
    TEMPLATE_PREPARE,
    check_agent_reply,
    warm_devices,
)
from harness.vm.warm.personalization import Personalization
from harness.vm.warm.plan import WarmPlan, WarmRestoreFailed, planned_start_mode, record_fallback
from harness.vm.watchdog import Watchdog
from harness.waiting import attempts


class TemplateMachines(Protocol):
    """What warm starts need from the QEMU provider: its host paths and a VM's life cycle (the
    template is an ordinary VM of that provider). A protocol, so this module need not import it."""

    name: str
    paths: HostPaths

    def vm_dir(self, name: VMName | str) -> Path: ...

    def clone(self, image: str, name: VMName, options: VMOptions | None = None) -> None: ...

    def start(self, name: VMName) -> None: ...

    def wait_ready(self, name: VMName, timeout_s: float) -> SSHEndpoint: ...

    def stop(self, name: VMName, timeout_s: float = 30.0) -> None: ...

    def delete(self, name: VMName) -> None: ...


TEMPLATE_RUN_ID = "warm"
TEMPLATE_BOOT_TIMEOUT_S = 900.0
TEMPLATE_PREPARE_TIMEOUT_S = 300.0
SAVE_TIMEOUT_S = 180.0
LOAD_TIMEOUT_S = 60.0
AGENT_TIMEOUT_S = 60.0
POLL_S = 0.02


class WarmStarts:
    """The QEMU provider's warm-start hooks: which disk a clone sits on, which arguments its QEMU
    gets, how it is resumed, and how it falls back to a cold boot."""

    def __init__(self, store: SnapshotStore | None = None) -> None:
        self.store = store or SnapshotStore()
        # Keys already worked out in this process: asking QEMU for its version costs ~40 ms a time.
        self._keys: dict[tuple[object, ...], SnapshotKey] = {}

    # -- clone --------------------------------------------------------------------------------

    def snapshot_key(self, provider: TemplateMachines, built: BuiltImage, options: VMOptions) -> SnapshotKey:
        binary = Path(require_tool("qemu-system-x86_64", "boot Linux guests"))
        installed = binary.stat()  # an upgrade in mid-run changes these
        memo = (built.directory, options.cpus, options.memory_mb, str(binary), installed.st_mtime_ns,
                installed.st_size, os.environ.get(qemu_accel.ACCEL_ENV, ""))
        if memo not in self._keys:
            self._keys[memo] = self._work_out_key(provider, built, options, binary)
        return self._keys[memo]

    @staticmethod
    def _work_out_key(provider: TemplateMachines, built: BuiltImage, options: VMOptions, binary: Path) -> SnapshotKey:
        accel = qemu_accel.choose_accel(provider.paths, built.kernel)
        # The clone's command line with everything per-VM replaced by a constant.
        launch = QemuLaunch(
            name="warm", vm_dir=Path("/vm"), kernel=built.kernel, initrd=built.initrd,
            kernel_cmdline=built.kernel_cmdline, ssh_port=0, accel_args=accel.qemu_args,
            options=VMOptions(cpus=options.cpus, memory_mb=options.memory_mb), extra_args=warm_devices(),
        )
        signature = hashlib.sha256("\0".join(qemu_command("qemu", launch)).encode()).hexdigest()
        version = qemu_accel.qemu_version(str(binary))
        return SnapshotKey(image=built.name, image_hash=built.content_hash, qemu_version=version,
                           accel=accel.name, launch_signature=signature)

    def prepare_clone(self, provider: TemplateMachines, image: str, built: BuiltImage,
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
    for _ in attempts(timeout_s, POLL_S):
        if process.poll() is not None:
            raise ConnectionError("QEMU exited while loading the state")
        status = qmp.execute("query-status")["status"]
        if status != "inmigrate":
            if status not in ("paused", "prelaunch", "postmigrate"):
                raise WarmRestoreFailed(f"QEMU is '{status}' after loading the state, expected paused")
            return
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


def build_snapshot(provider: TemplateMachines, image: str, options: VMOptions, work: Path) -> None:
    """Boot a template VM cold, prepare it, save it into ``work/state`` and keep its disk as
    ``work/disk.qcow2``. The template is an ordinary harness VM meanwhile (the reaper removes it if
    this process dies; so does its own watchdog, at once)."""
    name = VMName.new(TEMPLATE_RUN_ID)
    template_options = VMOptions(cpus=options.cpus, memory_mb=options.memory_mb)
    with Watchdog.spawn(provider.paths) as watchdog:
        watchdog.watch(provider.name, str(name))
        _build_template(provider, image, name, template_options, work)
        watchdog.release(str(name))


def _build_template(provider: TemplateMachines, image: str, name: VMName, template_options: VMOptions,
                    work: Path) -> None:
    from harness.ssh import SSHTransport

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


def _save_running_machine(provider: TemplateMachines, name: VMName, state: Path) -> None:
    vm_dir = provider.vm_dir(name)
    with QMPClient(vm_dir / "qmp.sock", timeout_s=10.0) as qmp:
        qmp.execute("stop")
        qmp.execute("migrate", uri=f"exec:cat > {shlex.quote(str(state))}")
        status = "not asked"
        for _ in attempts(SAVE_TIMEOUT_S, POLL_S * 5):
            status = qmp.execute("query-migrate").get("status")
            if status in ("completed", "failed", "cancelled"):
                break
        if status != "completed":
            raise InfrastructureError(f"saving the template's state ended '{status}'",
                                      hint=f"see {vm_dir / 'qemu.log'}")
        qmp.execute("quit")
    provider.stop(name, timeout_s=0)
