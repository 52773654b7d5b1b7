"""First contact with a guest that starts with a password (tart's and Orchard's macOS images).

Three steps, each with a deadline: prove that what answers at an address is an SSH server (banner
plus a completed key exchange, because an address from a DHCP lease table can be stale), log in
once with the image's password, and install a per-run key so that every later connection uses key
authentication. Shared by the tart and Orchard providers; QEMU images carry a build-time key
instead and never come here.
"""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.errors import InfrastructureError


@dataclass(frozen=True)
class RunKey:
    """An ed25519 key pair on the host; the private half is readable only by us."""

    private_path: Path
    public_line: str

    @classmethod
    def create(cls, path: Path, comment: str) -> RunKey:
        if path.exists():
            return cls.load(path)
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(private)
        line = f"{public.decode()} {comment}"
        path.with_suffix(".pub").write_text(line + "\n")
        return cls(private_path=path, public_line=line)

    @classmethod
    def load(cls, path: Path) -> RunKey:
        return cls(private_path=path, public_line=path.with_suffix(".pub").read_text().strip())

    def paramiko_key(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key_file(str(self.private_path))


def probe_ssh(host: str, port: int, timeout_s: float) -> str:
    """The server's banner once a key exchange has completed; raises OSError/SSHException if not.

    A TCP accept alone proves nothing (a relay or a stale lease answers too); the banner proves an
    SSH server and the finished key exchange proves it speaks the protocol.
    """
    sock = socket.create_connection((host, port), timeout=timeout_s)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout_s
    transport.handshake_timeout = timeout_s
    try:
        transport.start_client(timeout=timeout_s)
        return transport.remote_version
    finally:
        transport.close()


def _connect(
    host: str, port: int, user: str, timeout_s: float, *, key: RunKey | None = None, password: str | None = None
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # The guest is brand new: its host key cannot be known yet. The SSH layer pins it afterwards.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        host,
        port=port,
        username=user,
        password=password,
        pkey=key.paramiko_key() if key else None,
        timeout=timeout_s,
        banner_timeout=timeout_s,
        auth_timeout=timeout_s,
        look_for_keys=False,
        allow_agent=False,
    )
    return client


def key_login_works(host: str, port: int, user: str, key: RunKey, timeout_s: float) -> bool:
    try:
        _connect(host, port, user, timeout_s, key=key).close()
        return True
    except paramiko.AuthenticationException:
        return False


def _run(client: paramiko.SSHClient, command: str, timeout_s: float) -> tuple[int, str]:
    _, stdout, stderr = client.exec_command(command, timeout=timeout_s)
    stdout.channel.settimeout(timeout_s)
    out = stdout.read().decode(errors="replace") + stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out


def install_run_key(host: str, port: int, user: str, password: str, key: RunKey, timeout_s: float) -> None:
    """Log in with the password once and append the run key to authorized_keys (idempotent)."""
    try:
        client = _connect(host, port, user, timeout_s, password=password)
    except paramiko.AuthenticationException as exc:
        raise InfrastructureError(
            f"SSH password login as {user!r} on {host}:{port} was refused",
            hint="the base image's credentials differ: set HARNESS_TART_USER / HARNESS_TART_PASSWORD "
            "(tart's vanilla images use admin/admin)",
        ) from exc
    line = shlex.quote(key.public_line)
    command = (
        "umask 077 && mkdir -p ~/.ssh && touch ~/.ssh/authorized_keys && "
        f"(grep -qxF {line} ~/.ssh/authorized_keys || printf '%s\\n' {line} >> ~/.ssh/authorized_keys) && "
        "chmod 700 ~/.ssh && chmod 600 ~/.ssh/authorized_keys"
    )
    try:
        status, output = _run(client, command, timeout_s)
    finally:
        client.close()
    if status != 0:
        raise InfrastructureError(
            f"installing the run key into {user}@{host}:~/.ssh/authorized_keys failed (exit {status})",
            hint="check that the guest user's home is writable",
            detail=output[-2000:],
        )
    if not key_login_works(host, port, user, key, timeout_s):
        raise InfrastructureError(
            f"the run key was installed on {host}:{port} but key login as {user!r} is still refused",
            hint="the guest's sshd may disable public-key authentication; check the base image's "
            "sshd_config (vm_images/macos/README.md)",
        )


def ensure_key_login(
    host: str, port: int, user: str, password: str | None, key: RunKey, timeout_s: float
) -> None:
    """Key login works afterwards, or an InfrastructureError says why not."""
    if key_login_works(host, port, user, key, timeout_s):
        return
    if password is None:
        raise InfrastructureError(
            f"key login as {user!r} on {host}:{port} was refused and no password is configured",
            hint="set HARNESS_TART_PASSWORD to the base image's password (admin for tart's images)",
        )
    install_run_key(host, port, user, password, key, timeout_s)
