"""What stands behind a stand-in VM: a real QEMU guest, or (for fast CLI contract tests) nothing.

``TART_STANDIN_BACKEND`` picks one:
- ``qemu`` (default): a throw-away Linux guest from the harness's QEMU provider, given tart's
  default credentials (a user ``admin`` with password ``admin``, password login enabled) so that
  the tart provider's first-login path is exercised for real;
- ``loopback``: an SSH server on 127.0.0.1 and no VM (:mod:`.loopback`), for fast provider tests;
- ``idle``: no guest at all. ``run`` still stays in the foreground, takes a lease and honours
  SIGINT, but nothing answers SSH. Only for the CLI contract tests, which never log in.
"""

from __future__ import annotations

import os
import shlex
import time
from typing import Any, Protocol

import paramiko

from harness.config import HostPaths
from harness.host.run_label import VMName
from harness.testing.tart_standin.home import StandinError
from harness.vm.provider import Provider, VMOptions
from harness.vm.watchdog import Watchdog

STANDIN_RUN_ID = "standin"


class Guest(Protocol):
    def start(self) -> None:
        """Boot; returns once the hypervisor runs (the guest is still booting)."""

    def wait_ready(self, timeout_s: float) -> tuple[str, int] | None:
        """Where the guest's sshd listens on the host, once it answers; None if it never will."""

    def alive(self) -> bool: ...

    def shutdown(self, timeout_s: float) -> None:
        """Power off and remove the guest's disk; safe to call twice or before ``start``."""

    def console_tail(self) -> str: ...


class IdleGuest:
    def __init__(self) -> None:
        self._up = False

    def start(self) -> None:
        self._up = True

    def wait_ready(self, timeout_s: float) -> tuple[str, int] | None:
        return None

    def alive(self) -> bool:
        return self._up

    def shutdown(self, timeout_s: float) -> None:
        self._up = False

    def console_tail(self) -> str:
        return "(idle stand-in guest: no console)"


def _provision_command(user: str, password: str) -> str:
    """Root shell snippet giving a Debian guest the clean macOS image's login (vm_images/macos):
    user + password, passwordless sudo, password login over SSH."""
    dropin = "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
    return " && ".join([
        f"(id {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user})",
        f"echo {shlex.quote(f'{user}:{password}')} | chpasswd",
        f"echo {shlex.quote(f'{user} ALL=(ALL) NOPASSWD: ALL')} > /etc/sudoers.d/{user}-nopasswd",
        f"chmod 0440 /etc/sudoers.d/{user}-nopasswd",
        # 00- sorts first and sshd keeps the first value it reads.
        f"printf %s {shlex.quote(dropin)} > /etc/ssh/sshd_config.d/00-tart-standin.conf",
        "(systemctl reload ssh || systemctl reload sshd || kill -HUP $(cat /run/sshd.pid))",
    ])


class QemuGuest:
    """A Linux guest from the QEMU provider, owned by this ``run`` process (its pid is in the name)."""

    def __init__(self, provider: Provider, backing_image: str, user: str, password: str, warm: bool = False) -> None:
        self.provider = provider
        self.backing_image = backing_image
        self.warm = warm
        self.name = VMName.new(STANDIN_RUN_ID)
        self.user = user
        self.password = password
        self._cloned = False
        self._running = False
        self._watchdog: Watchdog | None = None

    def start(self) -> None:
        # tart's VM lives inside `tart run`: however this process ends, SIGKILL included, the
        # backing QEMU guest must go too, so it is watched like every other harness VM.
        self._watchdog = Watchdog.spawn(HostPaths.from_env())
        self._watchdog.watch(self.provider.name, str(self.name))
        self.provider.clone(self.backing_image, self.name, VMOptions(warm=self.warm))
        self._cloned = True
        self.provider.start(self.name)
        self._running = True

    def wait_ready(self, timeout_s: float) -> tuple[str, int] | None:
        endpoint = self.provider.wait_ready(self.name, timeout_s)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(
            endpoint.host, port=endpoint.port, username=endpoint.user, key_filename=str(endpoint.key_path),
            timeout=30, banner_timeout=30, auth_timeout=30, look_for_keys=False, allow_agent=False,
        )
        try:
            command = f"sudo -n sh -c {shlex.quote(_provision_command(self.user, self.password))}"
            _, stdout, stderr = client.exec_command(command, timeout=120)
            status = stdout.channel.recv_exit_status()
            if status != 0:
                raise StandinError(
                    f"could not give the backing guest tart's login ({self.user}): exit {status}: "
                    f"{stderr.read().decode(errors='replace')[-500:]}"
                )
        finally:
            client.close()
        return endpoint.host, endpoint.port

    def alive(self) -> bool:
        if not self._running:
            return False
        try:
            return any(vm.name == str(self.name) and vm.state == "running" for vm in self.provider.list())
        except Exception:  # noqa: BLE001 - a listing hiccup is not a dead guest
            return True

    def shutdown(self, timeout_s: float) -> None:
        if self._running:
            self.provider.stop(self.name, timeout_s)
            self._running = False
        if self._cloned:
            self.provider.delete(self.name)
            self._cloned = False
        if self._watchdog is not None:
            self._watchdog.release(str(self.name))
            self._watchdog.close()
            self._watchdog = None

    def console_tail(self) -> str:
        return self.provider.console_tail(self.name)


def make_guest(config: dict[str, Any], warm: bool = False) -> Guest:
    backend = os.environ.get("TART_STANDIN_BACKEND", "qemu")
    user = os.environ.get("TART_STANDIN_USER", "admin")
    password = os.environ.get("TART_STANDIN_PASSWORD", "admin")
    if backend == "idle":
        return IdleGuest()
    if backend == "loopback":
        from harness.testing.tart_standin.loopback import LoopbackSSHGuest

        return LoopbackSSHGuest(user, password)
    if backend != "qemu":
        raise StandinError(f"unknown TART_STANDIN_BACKEND {backend!r} (use qemu, loopback or idle)")
    from harness.vm.registry import get_provider

    backing = config.get("standinBacking")
    if not backing:
        raise StandinError("this VM has no backing QEMU image (create golden VMs with `standin-import`)")
    return QemuGuest(get_provider("qemu"), str(backing), user=user, password=password, warm=warm)


def wait_while_alive(guest: Guest, poll_s: float = 1.0) -> None:
    while guest.alive():
        time.sleep(poll_s)
