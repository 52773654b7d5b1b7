"""A stand-in provider for unit tests of the lifecycle code (machine, reaper, gc).

Named as what it is: no VM. A "VM" is a directory ``<vms>/<name>/`` with an ``overlay.qcow2``
file and, while running, a detached ``sleep`` process standing in for the hypervisor (its pid in
``qemu.pid``). ``wait_ready`` hands out a fixed SSH endpoint, e.g. a local sshd, so the SSH part
of the lifecycle is still real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.errors import BootTimeout, UsageError
from harness.host.run_label import VMName
from harness.ssh.endpoint import SSHEndpoint
from harness.vm.provider import COLD_ONLY, Capabilities, StartMode, VMInfo, VMOptions

FAKE_IMAGE = "fake-image"


@dataclass
class FakeProvider:
    vms: Path
    endpoint: SSHEndpoint | None = None
    name: str = "fake"
    calls: list[str] = field(default_factory=list)
    fail_ready: bool = False
    capabilities: Capabilities = field(default_factory=Capabilities)

    def images(self) -> list[str]:
        return [FAKE_IMAGE]

    def traffic_pcap(self, name: VMName | str) -> None:
        return None

    def image_digest(self, image: str) -> None:
        return None

    def start_mode(self, name: VMName | str) -> StartMode:
        return COLD_ONLY

    def foreign_running_count(self) -> int:
        return 0

    def _dir(self, name: VMName | str) -> Path:
        return self.vms / str(name)

    def clone(self, image: str, name: VMName, options: VMOptions | None = None) -> None:
        self.calls.append(f"clone {name}")
        if image != FAKE_IMAGE:
            raise UsageError(f"unknown image {image}")
        self._dir(name).mkdir(parents=True)
        (self._dir(name) / "overlay.qcow2").write_bytes(b"\0" * 4096)
        (self._dir(name) / "meta.json").write_text(json.dumps({"image": image}))

    def start(self, name: VMName) -> None:
        self.calls.append(f"start {name}")
        hypervisor = subprocess.Popen(
            ["sleep", f"{86400}.{os.getpid()}"], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        (self._dir(name) / "qemu.pid").write_text(str(hypervisor.pid))
        (self._dir(name) / "serial.log").write_text(f"fake console of {name}\nlogin: ready\n")

    def wait_ready(self, name: VMName, timeout_s: float) -> SSHEndpoint:
        self.calls.append(f"wait_ready {name}")
        if self.fail_ready or self.endpoint is None:
            raise BootTimeout(f"{name} did not answer SSH within {timeout_s:g} s")
        return self.endpoint

    def pid(self, name: VMName | str) -> int | None:
        try:
            return int((self._dir(name) / "qemu.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self, name: VMName, timeout_s: float = 30.0) -> None:
        self.calls.append(f"stop {name}")
        pid = self.pid(name)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
            psutil.Process(pid).wait(timeout=10)  # killed: gone at once, whatever timeout_s
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
        (self._dir(name) / "qemu.pid").unlink(missing_ok=True)

    def delete(self, name: VMName) -> None:
        self.calls.append(f"delete {name}")
        directory = self._dir(name)
        for child in directory.glob("*") if directory.exists() else []:
            child.unlink()
        if directory.exists():
            directory.rmdir()

    def list(self) -> list[VMInfo]:
        infos = []
        for directory in sorted(self.vms.glob("*")) if self.vms.exists() else []:
            parsed = VMName.parse(directory.name)
            pid = self.pid(directory.name)
            running = pid is not None and psutil.pid_exists(pid)
            infos.append(VMInfo(directory.name, self.name, "running" if running else "stopped",
                                parsed.owner_pid if parsed else None))
        return infos

    def console_tail(self, name: VMName, lines: int = 60) -> str:
        try:
            return "\n".join((self._dir(name) / "serial.log").read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def wait_for(predicate: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
