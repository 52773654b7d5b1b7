"""A throw-away OpenSSH server on 127.0.0.1 for testing the SSH transport without a VM.

It runs the host's real ``sshd`` (package openssh-server) in the foreground with its own host key,
its own authorized key and no PAM, as the current user, so that every test talks real SSH/SFTP.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.ssh.endpoint import SSHEndpoint
from tests.needs import unavailable

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER_CANDIDATES = (Path("/usr/lib/openssh/sftp-server"), Path("/usr/libexec/sftp-server"))


@dataclass(frozen=True)
class LocalSSHD:
    endpoint: SSHEndpoint
    workdir: Path
    host_key: Path
    process: subprocess.Popen[bytes]


def require_sshd() -> None:
    if SSHD.exists() and shutil.which("ssh-keygen"):
        return
    unavailable("needs /usr/sbin/sshd and ssh-keygen: apt-get install -y openssh-server openssh-client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "harness-test", "-f", str(path)],
        check=True,
    )
    return path


def _config(workdir: Path, port: int, host_key: Path, authorized: Path) -> Path:
    sftp = next((p for p in SFTP_SERVER_CANDIDATES if p.exists()), None)
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        "PidFile none",
        f"AuthorizedKeysFile {authorized}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding yes",
        f"Subsystem sftp {sftp if sftp else 'internal-sftp'}",
        "LogLevel ERROR",
    ]
    path = workdir / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_banner(port: int, process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd on port {port} did not answer within {timeout_s} s")


@pytest.fixture(scope="module", name="sshd")
def sshd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSSHD]:
    """A local sshd for a test module (import this fixture into the module to use it)."""
    workdir = tmp_path_factory.mktemp("sshd")
    key = keygen(workdir / "client_ed25519")
    with run_sshd(workdir / "server", key) as server:
        yield server


@contextmanager
def run_sshd(
    workdir: Path, client_key: Path, port: int | None = None, host_key: Path | None = None,
    delay_s: float = 0.0,
) -> Iterator[LocalSSHD]:
    """sshd in the foreground on 127.0.0.1:port; killed (with its sessions) on exit."""
    require_sshd()
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    port = port or free_port()
    host_key = host_key or keygen(workdir / "host_ed25519")
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    config = _config(workdir, port, host_key, authorized)
    if delay_s:
        time.sleep(delay_s)
    # -D: stay in the foreground as our child; -e: log to stderr. Own session, so that stopping it
    # also stops the per-connection sshd children.
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL, stderr=(workdir / "sshd.log").open("ab"),
        start_new_session=True,
    )
    try:
        _wait_banner(port, process)
        user = pwd.getpwuid(os.getuid()).pw_name
        endpoint = SSHEndpoint(host="127.0.0.1", port=port, user=user, key_path=client_key)
        yield LocalSSHD(endpoint, workdir, host_key, process)
    finally:
        try:
            os.killpg(process.pid, 15)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)
