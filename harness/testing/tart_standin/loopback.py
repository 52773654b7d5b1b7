"""The stand-in's fast backend for the provider's unit tests: an SSH server, no VM at all.

``TART_STANDIN_BACKEND=loopback`` makes ``run`` start a paramiko SSH server on 127.0.0.1 that
accepts tart's default login (``admin``/``admin``) and the keys in its scratch home's
``~/.ssh/authorized_keys``, and runs exec requests with ``/bin/sh`` on the host with ``HOME`` set
to that scratch directory. It exists so that the tart provider's readiness and first-login logic
(banner, handshake, password login, key install, key login) can be tested in a second, not to
stand for a guest: the suite itself always runs on the QEMU backend.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import paramiko

# paramiko re-exports these at its top level, but types-paramiko declares them only here.
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from harness.ssh.relay import Listener
from harness.waiting import attempts


class _Server(paramiko.ServerInterface):
    def __init__(self, user: str, password: str, home: Path) -> None:
        self.user, self.password, self.home = user, password, home
        self.command: bytes | None = None
        self.exec_ready = threading.Event()

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = username == self.user and password == self.password
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        wanted = f"{key.get_name()} {base64.b64encode(key.asbytes()).decode()}"
        try:
            lines = (self.home / ".ssh" / "authorized_keys").read_text().splitlines()
        except FileNotFoundError:
            return AUTH_FAILED
        known = {" ".join(line.split()[:2]) for line in lines if line.strip()}
        return AUTH_SUCCESSFUL if username == self.user and wanted in known else AUTH_FAILED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.command = command
        self.exec_ready.set()
        return True


class LoopbackSSHGuest:
    """Implements :class:`harness.testing.tart_standin.guests.Guest` with the server above."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self._scratch = tempfile.TemporaryDirectory(prefix="tart-standin-loopback-")
        self.home = Path(self._scratch.name)
        self._host_key = paramiko.RSAKey.generate(2048)
        self._listener: Listener | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self._listener = Listener(self._session, name="loopback-guest")

    def wait_ready(self, timeout_s: float) -> tuple[str, int] | None:
        assert self._listener is not None
        return self._listener.address

    def alive(self) -> bool:
        return self._listener is not None and not self._stop.is_set()

    def shutdown(self, timeout_s: float) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        self._scratch.cleanup()

    def console_tail(self) -> str:
        return "(loopback stand-in guest: no console)"

    def _session(self, conn: socket.socket, _peer: tuple[str, int]) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self._host_key)
        server = _Server(self.user, self.password, self.home)
        try:
            transport.start_server(server=server)
            channel = transport.accept(timeout=20)
            if channel is None or not server.exec_ready.wait(timeout=20) or server.command is None:
                return
            env = {**os.environ, "HOME": str(self.home)}
            proc = subprocess.run(
                ["/bin/sh", "-c", server.command.decode()], cwd=self.home, env=env,
                capture_output=True, timeout=60, check=False,
            )
            channel.sendall(proc.stdout)
            channel.sendall_stderr(proc.stderr)
            channel.send_exit_status(proc.returncode)
            channel.close()
            for _ in attempts(5.0, 0.05):  # let the client read the status and hang up first
                if not transport.is_active():
                    break
        except (paramiko.SSHException, EOFError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            transport.close()
