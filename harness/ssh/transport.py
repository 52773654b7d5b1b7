"""One SSH connection to one VM, the facade the rest of the harness uses: commands
(:mod:`harness.ssh.exec`), file copies (:mod:`harness.ssh.sftp`) and port forwards
(:mod:`harness.ssh.relay`) over a connection whose host key is pinned
(:mod:`harness.ssh.host_keys`) and whose every step is in the VM's command log."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Self

import paramiko

from harness.bounded import last_lines
from harness.errors import InfrastructureError
from harness.ssh.command_log import CommandLog
from harness.ssh.connection import open_connection, remote_cipher
from harness.ssh.endpoint import SSHEndpoint
from harness.ssh.exec import RemoteShell
from harness.ssh.host_keys import HostKeyPin, openssh_options, ssh_command
from harness.ssh.relay import Peer, Relay, Stream, Tap
from harness.ssh.results import CommandResult, Transfer
from harness.ssh.sftp import FileCopies
from harness.ssh.trace import ForwardTap, OperationTrace

FORWARD_OPEN_TIMEOUT_S = 15.0


class _RefusedForwards(logging.Filter):
    """Drops paramiko's ERROR line for a forward the guest refused. Refusals are expected while a
    server starts (health polls race its listen) and each one is already in the VM's command log;
    a lasting one surfaces as the caller's own error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "open FAILED" not in record.getMessage()


REFUSED_FORWARD_FILTER = _RefusedForwards()  # one instance: addFilter keeps a single copy


class SSHTransport:
    """An authenticated SSH connection to one VM. Use ``SSHTransport.connect``."""

    def __init__(
        self,
        endpoint: SSHEndpoint,
        transport: paramiko.Transport,
        known_hosts: Path,
        log: CommandLog,
    ) -> None:
        self.endpoint = endpoint
        self.known_hosts = known_hosts
        self.log = log
        self._transport = transport
        # Off unless HARNESS_SSH_TRACE is set (bench/bench_warm.py replays the run's guest work).
        self.trace = OperationTrace.from_env(f"{endpoint.host}-{endpoint.port}")
        self._shell = RemoteShell(transport, endpoint, log, self.trace)
        self._files = FileCopies(transport, endpoint, log, self.trace,
                                 lambda path, timeout: self.remote_sha256(path, timeout=timeout))

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        endpoint: SSHEndpoint,
        *,
        known_hosts: Path,
        log_path: Path,
        deadline_s: float = 60.0,
        still_alive: Callable[[], None] | None = None,
    ) -> SSHTransport:
        """Connect, retrying refused/half-open connections until ``deadline_s`` has passed.

        ``still_alive`` is called between attempts and may raise (e.g. the VM's process died)
        to give up early. A refused key is not retried: it will not start working.
        """
        log = CommandLog(log_path)
        pin = HostKeyPin(known_hosts, endpoint.host, endpoint.port)
        transport = open_connection(endpoint, pin, log, deadline_s, still_alive)
        return cls(endpoint, transport, known_hosts, log)

    @property
    def alive(self) -> bool:
        return self._transport.is_active()

    @property
    def cipher(self) -> str:
        """The cipher negotiated for data sent to the guest."""
        return remote_cipher(self._transport)

    def close(self) -> None:
        self._files.close()
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------

    def run(
        self,
        cmd: str,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = False,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``cmd`` in the guest user's login shell; raise RemoteTimeout past ``timeout`` s.

        On timeout the command's whole process group is killed (TERM, then KILL) before raising.
        """
        return self._shell.run(cmd, timeout, env=env, cwd=cwd, check=check, stdin=stdin)

    def interactive_channel(self, keepalive_s: float = 15.0) -> paramiko.Channel:
        """A session channel the caller drives itself (a terminal session); keepalives make a
        guest that died mid-session show as a dropped connection instead of a silent hang."""
        self._transport.set_keepalive(int(keepalive_s))
        self.log.note("interactive session opened")
        return self._shell.open_session(30.0)

    # -- files ------------------------------------------------------------------------------

    def remote_sha256(self, path: str, timeout: float = 300.0) -> str:
        quoted = shlex.quote(path)
        result = self.run(
            f"if command -v sha256sum >/dev/null; then sha256sum -- {quoted}; "
            f"else shasum -a 256 {quoted}; fi",
            timeout=timeout,
        )
        digest = result.stdout.split(" ", 1)[0].strip()
        if not result.ok or len(digest) != 64:
            raise InfrastructureError(
                f"could not checksum {path} in the guest (exit {result.exit_code})",
                detail=last_lines(result.stderr, 5),
            )
        return digest

    def put(
        self, local: Path | str, remote: str, *, mode: int | None = None, timeout: float = 900.0
    ) -> Transfer:
        """Copy a host file into the guest and prove the copy by sha256 on both ends."""
        return self._files.put(local, remote, mode=mode, timeout=timeout)

    def get(self, remote: str, local: Path | str, *, timeout: float = 900.0) -> Transfer:
        """Copy a guest file to the host and prove the copy by sha256 on both ends."""
        return self._files.get(remote, local, timeout=timeout)

    # -- port forwarding --------------------------------------------------------------------

    @contextmanager
    def forward(self, guest_port: int, guest_host: str = "127.0.0.1") -> Iterator[int]:
        """Forward ``guest_host:guest_port`` (as seen from the guest) to 127.0.0.1:<yielded port>."""
        target = (guest_host, guest_port)

        def connect(peer: Peer) -> Stream:
            channel: Stream = self._transport.open_channel(
                "direct-tcpip", target, peer, timeout=FORWARD_OPEN_TIMEOUT_S)
            return channel

        def refused(peer: Peer, error: BaseException) -> None:
            self.log.note(f"forward to guest {target} refused: {error}")

        tap: Callable[[], Tap] | None = None
        if self.trace is not None:
            tap = partial(ForwardTap, self.trace, guest_port)
        logging.getLogger("paramiko.transport").addFilter(REFUSED_FORWARD_FILTER)
        relay = Relay(connect, name=f"ssh-forward-{guest_port}",
                      refusals=(paramiko.SSHException,), refused=refused, tap=tap)
        self.log.note(f"forwarding 127.0.0.1:{relay.port} -> guest {guest_host}:{guest_port}")
        try:
            yield relay.port
        finally:
            relay.close()

    # -- for humans -------------------------------------------------------------------------

    def openssh_options(self) -> list[str]:
        """Options that make the OpenSSH client use the same key and host key pin."""
        return openssh_options(self.endpoint, self.known_hosts)

    def ssh_command(self) -> str:
        """The exact ``ssh`` line a human pastes to log into the VM."""
        return ssh_command(self.endpoint, self.known_hosts)
