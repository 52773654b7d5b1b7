"""Linux guests on QEMU: the ``Provider`` this host can actually run.

One VM = one directory ``HostPaths.vms/<name>/`` holding everything about it:

    overlay.qcow2   copy-on-write disk; its backing file is the cached base image (never written)
    meta.json       name, image and hash, owner pid, ssh port, accelerator, qemu pid + start time
    qemu.pid        the QEMU process id (meta.json has the start time that makes it unambiguous)
    qemu.log        QEMU's own stdout/stderr (why it refused to start or died)
    serial.log      the guest's serial console: our evidence of what the boot did
    qmp.sock        QMP control socket: clean power-down and quit now, save/restore later
    traffic.pcap    every frame the guest sent, when VMOptions.capture_traffic asks for it

Nothing is kept in memory that another process would need: ``list``/``stop``/``delete`` work
from a different process (the reaper, ``harness gc``) from these files alone. A warm start
(:mod:`harness.vm.qemu.warm`) restores a clone from a saved machine: three hooks below (the
overlay's backing disk in ``clone``, extra arguments and ``resume`` in ``start``) and a cold boot
when restoring fails.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

from harness.config import HostPaths
from harness.errors import BootTimeout, InfrastructureError, UsageError
from harness.host.run_label import VMName
from harness.host.tools import require_tool
from harness.images import image_store
from harness.images.store import BuiltImage, ImageStore, utc_now
from harness.ssh.endpoint import SSHEndpoint
from harness.vm.provider import Capabilities, StartMode, VMInfo, VMOptions, VMState
from harness.vm.qemu.accel import choose_accel
from harness.vm.qemu.launch import QemuLaunch, qemu_command
from harness.vm.qemu.network import LOOPBACK, free_loopback_port, read_ssh_banner
from harness.vm.qemu.qmp import QMPClient
from harness.vm.qemu.warm import WarmStarts
from harness.vm.warm.plan import WarmRestoreFailed
from harness.waiting import attempts

PROVIDER_NAME = "qemu"
SSH_BANNER = b"SSH-2.0-"
PORT_ATTEMPTS = 5
QMP_UP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.5
STOP_GRACE_S = 5.0  # after quit/SIGTERM, before the next harder step
CONSOLE_READ_BYTES = 256 * 1024
# CSI sequences (colours, cursor moves), charset selection, any other ESC + one byte (ESC M,
# ESC c, ESC 7 ...), then stray control bytes: the tail goes into error messages and reports.
ANSI_ESCAPE = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[0-~]|[\x00-\x08\x0b-\x1f\x7f]")
PORT_IN_USE = re.compile(r"host ?forward", re.IGNORECASE)


@dataclass(frozen=True)
class VMRecord:
    """``meta.json``: what any process needs to find, identify and clean up one VM."""

    name: str
    image: str
    image_hash: str
    image_dir: str
    owner_pid: int
    created: str
    options: dict[str, object] = field(default_factory=dict)
    ssh_port: int | None = None
    accel: str | None = None
    qemu_pid: int | None = None
    qemu_started: float | None = None  # process creation time: a recycled pid will not match

    def vm_options(self) -> VMOptions:
        raw = dict(self.options)
        pcap = raw.pop("pcap_path", None)
        return VMOptions(**raw, pcap_path=Path(str(pcap)) if pcap else None)  # type: ignore[arg-type]


def clean_console(raw: bytes, lines: int) -> str:
    text = ANSI_ESCAPE.sub(b"", raw.replace(b"\r\n", b"\n")).decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class QemuProvider:
    """Clones, boots and removes Debian guests; see the module docstring for the on-disk layout."""

    name = PROVIDER_NAME
    capabilities = Capabilities(traffic_capture=True, warm_start=True)

    def __init__(self, paths: HostPaths | None = None, store: ImageStore | None = None) -> None:
        self.paths = paths or HostPaths.from_env()
        self.store = store or image_store(self.paths)
        self.warm = WarmStarts()
        # QEMU children started by this object, reaped on stop so they never linger as zombies.
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ files

    def vm_dir(self, name: VMName | str) -> Path:
        return self.paths.vms / str(name)

    def record(self, name: VMName | str) -> VMRecord:
        path = self.vm_dir(name) / "meta.json"
        try:
            return VMRecord(**json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise UsageError(f"no QEMU VM named {name}", hint="see 'harness gc --list' or clone it first") from exc
        except (ValueError, TypeError) as exc:
            raise InfrastructureError(f"{path} is unreadable: {exc}", hint="delete the VM and clone again") from exc

    def _save(self, record: VMRecord) -> None:
        path = self.vm_dir(record.name) / "meta.json"
        partial = path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(asdict(record), indent=2) + "\n")
        partial.replace(path)

    def serial_log(self, name: VMName | str) -> Path:
        return self.vm_dir(name) / "serial.log"

    def traffic_pcap(self, name: VMName | str) -> Path | None:
        """Where this VM's traffic capture goes, or None when it was not asked for."""
        record = self.record(name)
        options = record.vm_options()
        if not options.capture_traffic:
            return None
        return options.pcap_path or self.vm_dir(name) / "traffic.pcap"

    def foreign_running_count(self) -> int:
        """QEMU guests outside the harness do not share its slots."""
        return 0

    def backing_files_in_use(self) -> set[Path]:
        """Base image disks that some VM's overlay still points at (``images prune`` spares them)."""
        used: set[Path] = set()
        for vm_dir in self._vm_dirs():
            try:
                used.add(Path(json.loads((vm_dir / "meta.json").read_text())["image_dir"]) / "image.qcow2")
            except (OSError, ValueError, KeyError):
                continue
        return used

    def _vm_dirs(self) -> list[Path]:
        if not self.paths.vms.is_dir():
            return []
        return sorted(p for p in self.paths.vms.iterdir() if p.is_dir())

    # ------------------------------------------------------------------ process identity

    def _process(self, record: VMRecord) -> psutil.Process | None:
        """The VM's live QEMU process, or None; a pid reused by another program never matches."""
        if record.qemu_pid is None or record.qemu_started is None:
            return None
        try:
            process = psutil.Process(record.qemu_pid)
            if abs(process.create_time() - record.qemu_started) > 0.05:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                self._reap(record.name)
                return None
            if str(self.vm_dir(record.name)) not in " ".join(process.cmdline()):
                return None
            return process
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def _reap(self, name: str) -> None:
        child = self._children.pop(name, None)
        if child is not None:
            try:
                child.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._children[name] = child

    # ------------------------------------------------------------------ Provider

    def images(self) -> list[str]:
        return self.store.known()

    def image_digest(self, image: str) -> str:
        """The build a clone of ``image`` would boot now: its content hash (recipe and builder)."""
        return self.store.current(image).content_hash

    def clone(self, image: str, name: VMName, options: VMOptions | None = None) -> None:
        if not isinstance(name, VMName):
            raise UsageError(f"VM name {name!r} is not a harness name", hint="make one with VMName.new(run_id)")
        built = self.store.current(image)
        qemu_img = require_tool("qemu-img", "create a VM's copy-on-write disk")
        vm_dir = self.vm_dir(name)
        self.paths.vms.mkdir(parents=True, exist_ok=True)
        try:
            vm_dir.mkdir()
        except FileExistsError as exc:
            raise UsageError(f"a VM named {name} already exists", hint="delete it first or pick a new name") from exc
        try:
            options = options or VMOptions()
            backing = self.warm.prepare_clone(self, image, built, options, vm_dir) if options.warm else built.disk
            subprocess.run(
                [qemu_img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing), str(vm_dir / "overlay.qcow2")],
                check=True, capture_output=True, text=True, timeout=60,
            )
            self._save(VMRecord(
                name=str(name), image=image, image_hash=built.content_hash, image_dir=str(built.directory),
                owner_pid=name.owner_pid, created=utc_now(),
                options={**asdict(options), "pcap_path": str(options.pcap_path) if options.pcap_path else None},
            ))
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(vm_dir, ignore_errors=True)
            raise InfrastructureError(f"qemu-img could not create the overlay for {name}", detail=exc.stderr) from exc
        except BaseException:
            shutil.rmtree(vm_dir, ignore_errors=True)
            raise

    def start(self, name: VMName) -> None:
        record = self.record(name)
        if self._process(record) is not None:
            raise UsageError(f"VM {name} is already running")
        built = BuiltImage.load(Path(record.image_dir))
        if built is None:
            raise InfrastructureError(f"the base image of {name} is gone ({record.image_dir})",
                                      hint="delete the VM; 'harness images prune' must not run while VMs use an image")
        qemu = require_tool("qemu-system-x86_64", "boot Linux guests")
        accel = choose_accel(self.paths, built.kernel)
        vm_dir = self.vm_dir(name)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            launch = QemuLaunch(
                name=str(name), vm_dir=vm_dir, kernel=built.kernel, initrd=built.initrd,
                kernel_cmdline=built.kernel_cmdline, ssh_port=free_loopback_port(),
                accel_args=accel.qemu_args, options=record.vm_options(),
                extra_args=self.warm.launch_args(vm_dir),
            )
            (vm_dir / "qmp.sock").unlink(missing_ok=True)
            process = self._spawn(qemu, launch, record, accel.name)
            if self._wait_qmp(process, vm_dir / "qmp.sock"):
                try:
                    self.warm.resume(vm_dir, process)
                except WarmRestoreFailed as exc:
                    self.stop(name, timeout_s=0)
                    self.warm.fall_back(vm_dir, built.disk, exc.message)
                    return self.start(name)
                return
            log = self._qemu_log(name)
            if attempt < PORT_ATTEMPTS and PORT_IN_USE.search(log):
                continue  # another program took the port between our probe and QEMU's bind
            raise InfrastructureError(
                f"QEMU exited while starting {name} (exit status {process.returncode})",
                hint="read QEMU's message below; 'harness images build' again if the image is damaged",
                detail=f"--- {vm_dir / 'qemu.log'} ---\n{log[-4000:]}",
            )
        raise InfrastructureError(f"no free loopback port for {name}'s SSH after {PORT_ATTEMPTS} tries")

    def _spawn(self, qemu: str, launch: QemuLaunch, record: VMRecord, accel: str) -> subprocess.Popen[bytes]:
        with (launch.vm_dir / "qemu.log").open("ab") as log:
            log.write(f"=== {utc_now()} starting QEMU, SSH forwarded from port {launch.ssh_port}\n".encode())
            log.flush()
            process = subprocess.Popen(
                qemu_command(qemu, launch), cwd=launch.vm_dir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._children[launch.name] = process
        try:
            (launch.vm_dir / "qemu.pid").write_text(f"{process.pid}\n")
            self._save(replace(record, ssh_port=launch.ssh_port, accel=accel, qemu_pid=process.pid,
                               qemu_started=psutil.Process(process.pid).create_time()))
        except BaseException:
            process.kill()
            process.wait()
            raise
        return process

    def _wait_qmp(self, process: subprocess.Popen[bytes], sock: Path) -> bool:
        """True once QEMU answers QMP (all devices and port forwards set up), False if it exited."""
        for _ in attempts(QMP_UP_TIMEOUT_S, 0.05):
            if process.poll() is not None:
                return False
            if sock.exists():
                try:
                    with QMPClient(sock, timeout_s=5.0) as qmp:
                        qmp.execute("query-status")
                    return True
                except (OSError, ConnectionError, ValueError):
                    pass
        process.kill()
        process.wait()
        return False

    def start_mode(self, name: VMName | str) -> StartMode:
        """Whether ``name`` was restored from a warm snapshot or booted cold (and why)."""
        return self.warm.mode(self.vm_dir(name), requested=self.record(name).vm_options().warm)

    def wait_ready(self, name: VMName, timeout_s: float) -> SSHEndpoint:
        record = self.record(name)
        if record.ssh_port is None:
            raise UsageError(f"VM {name} was never started", hint="call start() before wait_ready()")
        built = BuiltImage.load(Path(record.image_dir))
        if built is None:
            raise InfrastructureError(f"the base image of {name} is gone ({record.image_dir})")
        host_key = self.warm.host_key(self.vm_dir(name))
        if host_key is not None and self._process(record) is not None:
            # A resumed warm clone: its sshd listened before the save and has its own key now, so
            # a banner probe would only cost the emulated guest one more sshd start.
            return SSHEndpoint(host=LOOPBACK, port=record.ssh_port, user=built.user,
                               key_path=built.private_key, host_key=host_key)
        started = time.monotonic()
        for attempt in attempts(timeout_s, POLL_INTERVAL_S):
            if self._process(record) is None:
                raise self._boot_failure(name, f"QEMU exited before SSH answered ({time.monotonic() - started:.1f}s)", True)
            if (remaining := attempt.remaining_s()) <= 0:
                break
            if read_ssh_banner(record.ssh_port, timeout_s=min(3.0, remaining)).startswith(SSH_BANNER):
                return SSHEndpoint(host=LOOPBACK, port=record.ssh_port, user=built.user, key_path=built.private_key)
        raise self._boot_failure(name, f"no SSH banner within {timeout_s:g}s", False)

    def _boot_failure(self, name: VMName, what: str, qemu_died: bool) -> BootTimeout:
        state = "QEMU died" if qemu_died else "QEMU still running"
        detail = f"--- serial console ({self.serial_log(name)}) ---\n{self.console_tail(name)}"
        log = self._qemu_log(name).strip()
        said_something = any(line and not line.startswith("=== ") for line in log.splitlines())
        if qemu_died or said_something:
            detail += f"\n--- QEMU output ---\n{log[-2000:] or '(empty)'}"
        return BootTimeout(
            f"VM {name} did not become reachable: {what}; {state}",
            hint="read the console tail below; raise the boot timeout if the guest was still booting",
            detail=detail,
        )

    def _qemu_log(self, name: VMName | str) -> str:
        try:
            return (self.vm_dir(name) / "qemu.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, name: VMName, timeout_s: float = 30.0) -> None:
        """ACPI power-down (if ``timeout_s`` > 0), then QMP quit, SIGTERM, SIGKILL."""
        try:
            record = self.record(name)
        except UsageError:
            return
        process = self._process(record)
        sock = self.vm_dir(name) / "qmp.sock"
        if process is not None and timeout_s > 0 and self._qmp_quietly(sock, "system_powerdown"):
            self._wait_gone(process, timeout_s)
        if process is not None and process.is_running():
            quit_sent = self._qmp_quietly(sock, "quit")
            if not (quit_sent and self._wait_gone(process, STOP_GRACE_S)):
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        process.send_signal(sig)
                    except psutil.NoSuchProcess:
                        break
                    if self._wait_gone(process, STOP_GRACE_S):
                        break
        self._reap(str(name))
        sock.unlink(missing_ok=True)
        (self.vm_dir(name) / "qemu.pid").unlink(missing_ok=True)

    @staticmethod
    def _qmp_quietly(sock: Path, command: str) -> bool:
        """Send one QMP command; False if QEMU did not take it (the next, harder step follows)."""
        try:
            with QMPClient(sock, timeout_s=3.0) as qmp:
                qmp.execute(command)
            return True
        except (OSError, ConnectionError, ValueError, InfrastructureError):
            return False

    @staticmethod
    def _wait_gone(process: psutil.Process, timeout_s: float) -> bool:
        try:
            process.wait(timeout=timeout_s)
            return True
        except psutil.TimeoutExpired:
            return False
        except psutil.NoSuchProcess:
            return True

    def delete(self, name: VMName) -> None:
        """Kill QEMU outright (the disk is discarded, a clean shutdown buys nothing) and remove all."""
        vm_dir = self.vm_dir(name)
        if not vm_dir.exists():
            return
        self.stop(name, timeout_s=0)
        shutil.rmtree(vm_dir, ignore_errors=True)
        if vm_dir.exists():
            raise InfrastructureError(f"could not remove {vm_dir}", hint=f"remove it by hand: rm -rf {vm_dir}")

    def list(self) -> list[VMInfo]:
        infos: list[VMInfo] = []
        for vm_dir in self._vm_dirs():
            parsed = VMName.parse(vm_dir.name)
            state: VMState
            try:
                state = "running" if self._process(self.record(vm_dir.name)) is not None else "stopped"
            except (UsageError, InfrastructureError):
                state = "unknown"  # half-made clone or damaged meta.json: the reaper decides
            infos.append(VMInfo(name=vm_dir.name, provider=self.name, state=state,
                                owner_pid=parsed.owner_pid if parsed else None))
        return infos

    def console_tail(self, name: VMName, lines: int = 60) -> str:
        path = self.serial_log(name)
        try:
            with path.open("rb") as handle:
                handle.seek(max(0, path.stat().st_size - CONSOLE_READ_BYTES))
                return clean_console(handle.read(), lines)
        except OSError:
            return "(no serial console output)"
