"""File copies into and out of the guest over SFTP, each proven by sha256 on both ends."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, cast

import paramiko

from harness.errors import InfrastructureError, RemoteTimeout
from harness.ssh.command_log import CommandLog
from harness.ssh.connection import MAX_PACKET_SIZE, WINDOW_SIZE
from harness.ssh.endpoint import SSHEndpoint
from harness.ssh.results import Transfer
from harness.ssh.trace import OperationTrace
from harness.waiting import attempts

# OpenSSH's sftp-server accepts writes up to ~255 KiB; paramiko's default of 32 KiB per request
# costs a guest-side round of work per 32 KiB.
SFTP_REQUEST_SIZE = 255 * 1024
SFTP_PREFETCH_REQUESTS = 64
COPY_BLOCK = 4 * 2**20
CONNECTION_LOSS_GRACE_S = 1.0

# The guest's sha256 of a path, within a timeout (a command run over the same connection).
RemoteChecksum = Callable[[str, float], str]


class FileCopies:
    """put/get over one SSH connection's SFTP session, opened on first use."""

    def __init__(self, transport: paramiko.Transport, endpoint: SSHEndpoint, log: CommandLog,
                 trace: OperationTrace | None, checksum: RemoteChecksum) -> None:
        self._transport = transport
        self.endpoint = endpoint
        self.log = log
        self.trace = trace
        self._checksum = checksum
        self._sftp: paramiko.SFTPClient | None = None

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(
                    self._transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
                )
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise InfrastructureError(
                    f"cannot start SFTP on {self.endpoint.host}:{self.endpoint.port}: {exc}",
                    hint="the guest's sshd needs an sftp Subsystem",
                ) from None
            if self._sftp is None:
                raise InfrastructureError("the guest refused the sftp subsystem")
        return self._sftp

    def put(
        self, local: Path | str, remote: str, *, mode: int | None = None, timeout: float = 900.0
    ) -> Transfer:
        """Copy a host file into the guest and prove the copy by sha256 on both ends."""
        local = Path(local)
        if not local.is_file():
            raise InfrastructureError(f"cannot copy {local} into the guest: no such file")
        started = time.monotonic()
        deadline = started + timeout
        sftp = self._sftp_client()
        digest = hashlib.sha256()
        size = 0
        with self._transfer_errors("put", local, remote, timeout):
            _sftp_channel(sftp).settimeout(timeout)
            with local.open("rb") as src, sftp.open(remote, "wb") as dst:
                dst.MAX_REQUEST_SIZE = SFTP_REQUEST_SIZE
                dst.set_pipelined(True)
                while block := src.read(COPY_BLOCK):
                    digest.update(block)
                    dst.write(block)
                    size += len(block)
                    _check_deadline(deadline, "put", remote, timeout)
            if mode is not None:
                sftp.chmod(remote, mode)
        transfer = Transfer(str(local), remote, size, digest.hexdigest(),
                            time.monotonic() - started)
        if self.trace is not None:
            self.trace.record("put", time.time() - transfer.duration_s, transfer.duration_s,
                              local=str(local), remote=remote, mode=mode, size=size)
        self._verify(transfer, remote, max(deadline - time.monotonic(), 30.0))
        return transfer

    def get(self, remote: str, local: Path | str, *, timeout: float = 900.0) -> Transfer:
        """Copy a guest file to the host and prove the copy by sha256 on both ends."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        sftp = self._sftp_client()
        with self._transfer_errors("get", local, remote, timeout):
            _sftp_channel(sftp).settimeout(timeout)
            with local.open("wb") as raw:
                sink = _HashingWriter(raw)
                # getfo only calls write(); the stub asks for a whole IO[bytes]
                sftp.getfo(remote, cast(IO[bytes], sink),
                           max_concurrent_prefetch_requests=SFTP_PREFETCH_REQUESTS)
        transfer = Transfer(remote, str(local), sink.size, sink.digest.hexdigest(),
                            time.monotonic() - started)
        if self.trace is not None:
            self.trace.record("get", time.time() - transfer.duration_s, transfer.duration_s,
                              remote=remote, size=sink.size)
        self._verify(transfer, remote, max(started + timeout - time.monotonic(), 30.0))
        return transfer

    def _verify(self, transfer: Transfer, remote: str, timeout: float) -> None:
        theirs = self._checksum(remote, timeout)
        self.log.note(
            f"copied {transfer.source} -> {transfer.destination}: {transfer.size} bytes in "
            f"{transfer.duration_s:.2f} s, sha256 {transfer.sha256} (guest {theirs})"
        )
        if theirs != transfer.sha256:
            raise InfrastructureError(
                f"copy {transfer.source} -> {transfer.destination} is corrupt: "
                f"host sha256 {transfer.sha256}, guest sha256 {theirs}",
                hint="disk full in the guest, or a failing transport; see the command log",
            )

    @contextmanager
    def _transfer_errors(self, verb: str, local: Path, remote: str, timeout: float) -> Iterator[None]:
        try:
            yield
        except TimeoutError:
            raise RemoteTimeout(
                f"SFTP {verb} {local} <-> {remote} stalled past {timeout:g} s",
                hint="the guest stopped responding; see its console log",
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            if isinstance(exc, RemoteTimeout):
                raise
            if self._connection_fell():
                raise InfrastructureError(
                    f"the SSH connection to {self.endpoint.host}:{self.endpoint.port} dropped during "
                    f"the SFTP {verb} of {remote}",
                    hint="the guest's sshd or the VM itself went away: see its console log",
                ) from None
            raise InfrastructureError(
                f"SFTP {verb} {local} <-> {remote} failed: {exc or type(exc).__name__}",
                hint="check that the guest path's directory exists and has free space",
            ) from None

    def _connection_fell(self) -> bool:
        """Whether the connection itself is gone; its reader thread may need a moment to say so
        after the SFTP channel saw the end of the stream."""
        for _ in attempts(CONNECTION_LOSS_GRACE_S, 0.05):
            if not self._transport.is_active():
                return True
        return False


def _check_deadline(deadline: float, verb: str, path: str, timeout: float) -> None:
    if time.monotonic() > deadline:
        raise RemoteTimeout(f"SFTP {verb} of {path} ran past its {timeout:g} s timeout")


def _sftp_channel(sftp: paramiko.SFTPClient) -> paramiko.Channel:
    channel = sftp.get_channel()
    if channel is None:
        raise InfrastructureError("the SFTP session has no channel (it was closed)")
    return channel


class _HashingWriter:
    """A file-like sink that hashes what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)
