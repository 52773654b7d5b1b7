"""Commands, file copies and port forwards into a guest over SSH (paramiko).

One ``SSHTransport`` per VM. It pins the guest's host key on first contact (an OpenSSH
``known_hosts`` file, so a human's ``ssh`` uses the same pin), writes every command and its output
to a per-VM log, puts a deadline on every remote step and kills what overruns it, and verifies
every copied file by sha256 on both ends.
"""

from __future__ import annotations

import hashlib
import logging
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO, Protocol, Self, cast

import paramiko

from harness.errors import HarnessError, InfrastructureError, RemoteTimeout
from harness.ssh_trace import BusyClock, OperationTrace
from harness.vm.provider import SSHEndpoint

# Large windows and packets keep the pipe full: the guest (often under software emulation)
# is the bottleneck, so every round trip the host saves is throughput gained.
WINDOW_SIZE = 2**27
MAX_PACKET_SIZE = 2**15
# AES-GCM first: one pass per packet (no separate MAC), cheapest for an emulated guest CPU.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
# OpenSSH's sftp-server accepts writes up to ~255 KiB; paramiko's default of 32 KiB per request
# costs a guest-side round of work per 32 KiB.
SFTP_REQUEST_SIZE = 255 * 1024
SFTP_PREFETCH_REQUESTS = 64
COPY_BLOCK = 4 * 2**20
KILL_GRACE_S = 2.0
# Per stream, kept at each end of a command's output (a file-system listing fits well inside).
OUTPUT_KEEP_BYTES = 16 * 1024 * 1024
_PID_MARKER = "hnspid:"


@dataclass(frozen=True)
class CommandResult:
    cmd: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class RemoteCommandFailed(HarnessError):
    """``run(..., check=True)`` saw a non-zero exit; the caller decides whose fault that is."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(
            f"command exited with {result.exit_code} in the guest: {result.cmd}",
            hint="see the stderr below and the VM's command log",
            detail=_tail(result.stderr or result.stdout, 20),
        )
        self.result = result


@dataclass(frozen=True)
class Transfer:
    """One verified file copy."""

    source: str
    destination: str
    size: int
    sha256: str
    duration_s: float

    @property
    def mb_per_s(self) -> float:
        return self.size / 1e6 / self.duration_s if self.duration_s > 0 else float("inf")


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class CommandLog:
    """Appends commands and their output to one file, safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def note(self, text: str) -> None:
        self._append(f"{_now()} # {text}\n")

    def command(self, cmd: str, result: CommandResult | None, extra: str = "") -> None:
        lines = [f"{_now()} $ {cmd}{extra}\n"]
        if result is not None:
            lines.append(f"{_now()} exit {result.exit_code} after {result.duration_s:.3f} s\n")
            lines += [f"  | {line}\n" for line in result.stdout.splitlines()]
            lines += [f"  ! {line}\n" for line in result.stderr.splitlines()]
        self._append("".join(lines))

    def _append(self, text: str) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)


class HostKeyPin:
    """The guest's host key, recorded on first connect and required on every later one.

    Stored as an OpenSSH ``known_hosts`` file so that ``ssh -o UserKnownHostsFile=...`` checks the
    very same key.
    """

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.path = path
        self.host_id = host if port == 22 else f"[{host}]:{port}"

    def expect(self, public_line: str) -> None:
        """Pin a key known before first contact (an existing pin is left as it is)."""
        known = paramiko.HostKeys()
        if self.path.exists():
            known.load(str(self.path))
        if known.lookup(self.host_id):
            return
        entry = paramiko.hostkeys.HostKeyEntry.from_line(f"{self.host_id} {public_line}")
        if entry is None or entry.key is None:
            raise InfrastructureError(f"cannot pin host key {public_line[:60]!r} for {self.host_id}")
        known.add(self.host_id, entry.key.get_name(), entry.key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        known.save(str(self.path))

    def check(self, key: paramiko.PKey) -> None:
        known = paramiko.HostKeys()
        if self.path.exists():
            known.load(str(self.path))
        pinned = known.lookup(self.host_id)
        if not pinned:
            known.add(self.host_id, key.get_name(), key)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            known.save(str(self.path))
            return
        expected = pinned.get(key.get_name())
        if expected is None or expected != key:
            was = ", ".join(k.fingerprint for k in pinned.values())
            raise InfrastructureError(
                f"the SSH host key of {self.host_id} changed: pinned {was}, now {key.fingerprint}",
                hint="this is not the VM first connected to (did another VM take over its port?); "
                f"remove it with `harness gc` and re-run. The pin lives in {self.path}",
            )


def _load_key(endpoint: SSHEndpoint) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(endpoint.key_path)
    except FileNotFoundError:
        raise InfrastructureError(
            f"SSH private key {endpoint.key_path} does not exist",
            hint="build the base image (`harness images build ...`); the key is made with it",
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise InfrastructureError(
            f"cannot read SSH private key {endpoint.key_path}: {exc}",
            hint="the key must be an unencrypted OpenSSH private key; rebuild the image",
        ) from None


def _wrap(cmd: str, env: Mapping[str, str] | None, cwd: str | None) -> str:
    """A shell line that reports its pid (the session's process group) before running ``cmd``.

    sshd starts each session in a fresh session (setsid), so the pid printed is also the process
    group to kill when the command overruns its timeout. ``cmd`` runs through ``eval`` in the
    login shell, as ``ssh host cmd`` would run it: no extra shell to exec, which costs tens of
    milliseconds per command in an emulated guest.
    """
    steps = [f"printf '{_PID_MARKER}%s\\n' \"$$\""]
    if cwd is not None:
        steps.append(f"cd -- {shlex.quote(cwd)}")
    if env:
        steps.append("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
    steps.append(f"eval {shlex.quote(cmd)}")
    return " && ".join(steps)


class _Stream:
    """One output stream, bounded: the first and the last ``OUTPUT_KEEP_BYTES`` are kept and what
    lies between is counted, so a command printing hundreds of MB costs neither the host's memory
    nor a report of that size."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = OUTPUT_KEEP_BYTES - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > 2 * OUTPUT_KEEP_BYTES:
            excess = len(self.tail) - OUTPUT_KEEP_BYTES
            del self.tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        if not self.dropped:
            return (self.head + self.tail).decode(errors="replace")
        middle = f"\n[... {self.dropped} bytes of output dropped here ...]\n"
        return self.head.decode(errors="replace") + middle + self.tail.decode(errors="replace")


class _Output:
    """Collects a channel's stdout/stderr; peels the pid marker off the first stdout line."""

    def __init__(self) -> None:
        self.out = _Stream()
        self.err = _Stream()
        self.pid: int | None = None
        self._head_done = False

    def drain(self, chan: paramiko.Channel) -> None:
        while chan.recv_ready():
            self.out.add(chan.recv(1 << 16))
        while chan.recv_stderr_ready():
            self.err.add(chan.recv_stderr(1 << 16))
        if not self._head_done and b"\n" in self.out.head:
            head, _, rest = bytes(self.out.head).partition(b"\n")
            if head.startswith(_PID_MARKER.encode()):
                self.pid = int(head[len(_PID_MARKER) :])
                self.out.head = bytearray(rest)
            self._head_done = True

    def text(self) -> tuple[str, str]:
        return self.out.text(), self.err.text()


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
        self._sftp: paramiko.SFTPClient | None = None
        # Off unless HARNESS_SSH_TRACE is set (bench/bench_warm.py replays the run's guest work).
        self.trace = OperationTrace.from_env(f"{endpoint.host}-{endpoint.port}")

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
        if endpoint.host_key:
            pin.expect(endpoint.host_key)
        key = _load_key(endpoint)
        deadline = time.monotonic() + deadline_s
        attempt, last_error = 0, "no attempt made"
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                transport = _open_transport(endpoint, remaining)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                if still_alive is not None:
                    still_alive()
                time.sleep(min(0.5 * attempt, 3.0, max(deadline - time.monotonic(), 0)))
                continue
            try:
                pin.check(transport.get_remote_server_key())
                _authenticate(transport, endpoint, key)
            except BaseException:
                transport.close()
                raise
            log.note(f"connected to {endpoint.user}@{endpoint.host}:{endpoint.port} "
                     f"(attempt {attempt}, cipher {_remote_cipher(transport)})")
            return cls(endpoint, transport, known_hosts, log)
        raise InfrastructureError(
            f"could not open SSH to {endpoint.user}@{endpoint.host}:{endpoint.port} "
            f"within {deadline_s:.0f} s ({attempt - 1} attempts); last error: {last_error}",
            hint="the guest's sshd is not answering: look at the VM's console log",
        )

    @property
    def alive(self) -> bool:
        return self._transport.is_active()

    @property
    def cipher(self) -> str:
        """The cipher negotiated for data sent to the guest."""
        return _remote_cipher(self._transport)

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
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
        extra = "".join(
            ([f"  [cwd={cwd}]"] if cwd else []) + ([f"  [env={','.join(env)}]"] if env else [])
        )
        started, wall = time.monotonic(), time.time()
        chan = self._open_session(timeout)
        output = _Output()
        try:
            chan.exec_command(_wrap(cmd, env, cwd))
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            exit_code = self._collect(chan, output, started + timeout)
        except RemoteTimeout:
            self._kill_group(output.pid)
            out, err = output.text()
            self.log.command(cmd, None, extra + f"  [TIMED OUT after {timeout} s; killed]")
            if self.trace is not None:
                self.trace.command(cmd, env, cwd, stdin, wall, time.monotonic() - started, None)
            raise RemoteTimeout(
                f"command ran past its {timeout:g} s timeout in the guest and was killed: {cmd}",
                hint="raise the timeout if the step is legitimately slow; "
                f"the command log is {self.log.path}",
                detail=f"stdout tail:\n{_tail(out, 15)}\nstderr tail:\n{_tail(err, 15)}",
            ) from None
        finally:
            chan.close()
        out, err = output.text()
        result = CommandResult(cmd, exit_code, out, err, time.monotonic() - started)
        self.log.command(cmd, result, extra)
        if self.trace is not None:
            self.trace.command(cmd, env, cwd, stdin, wall, result.duration_s, exit_code)
        if check and not result.ok:
            raise RemoteCommandFailed(result)
        return result

    def interactive_channel(self, keepalive_s: float = 15.0) -> paramiko.Channel:
        """A session channel the caller drives itself (a terminal session); keepalives make a
        guest that died mid-session show as a dropped connection instead of a silent hang."""
        self._transport.set_keepalive(int(keepalive_s))
        self.log.note("interactive session opened")
        return self._open_session(30.0)

    def _open_session(self, timeout: float) -> paramiko.Channel:
        try:
            return self._transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise InfrastructureError(
                f"lost the SSH connection to {self.endpoint.host}:{self.endpoint.port}: {exc}",
                hint="the VM may have crashed or powered off: see its console log",
            ) from None

    def _collect(self, chan: paramiko.Channel, output: _Output, deadline: float) -> int:
        fd = chan.fileno()
        while True:
            output.drain(chan)
            if chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteTimeout("timeout")
            if not self._transport.is_active():
                raise InfrastructureError(
                    f"the SSH connection to {self.endpoint.host}:{self.endpoint.port} dropped "
                    "while a command ran",
                    hint="the VM may have crashed or powered off: see its console log",
                )
            select.select([fd], [], [], min(remaining, 1.0))
        if not chan.status_event.wait(max(deadline - time.monotonic(), 0.0) or 0.01):
            raise RemoteTimeout("timeout")
        return chan.exit_status

    def _kill_group(self, pid: int | None) -> None:
        """Best effort: TERM then KILL the timed-out command's process group."""
        if pid is None:
            return
        script = (
            f"kill -TERM -- -{pid} 2>/dev/null; sleep {KILL_GRACE_S:g}; "
            f"kill -KILL -- -{pid} 2>/dev/null; true"
        )
        try:
            chan = self._open_session(10.0)
            try:
                chan.exec_command(script)
                chan.shutdown_write()
                chan.status_event.wait(KILL_GRACE_S + 10.0)
            finally:
                chan.close()
            self.log.note(f"killed process group {pid}")
        except (InfrastructureError, paramiko.SSHException, OSError) as exc:
            self.log.note(f"could not kill process group {pid}: {exc}")

    # -- files ------------------------------------------------------------------------------

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
                detail=_tail(result.stderr, 5),
            )
        return digest

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
        theirs = self.remote_sha256(remote, timeout=timeout)
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
            raise InfrastructureError(
                f"SFTP {verb} {local} <-> {remote} failed: {exc}",
                hint="check that the guest path's directory exists and has free space",
            ) from None

    # -- port forwarding --------------------------------------------------------------------

    @contextmanager
    def forward(self, guest_port: int, guest_host: str = "127.0.0.1") -> Iterator[int]:
        """Forward ``guest_host:guest_port`` (as seen from the guest) to 127.0.0.1:<yielded port>."""
        forward = _PortForward(self._transport, guest_host, guest_port, self.log, self.trace)
        try:
            yield forward.local_port
        finally:
            forward.close()

    # -- for humans -------------------------------------------------------------------------

    def openssh_options(self) -> list[str]:
        """Options that make the OpenSSH client use the same key and host key pin."""
        return openssh_options(self.endpoint, self.known_hosts)

    def ssh_command(self) -> str:
        return ssh_command(self.endpoint, self.known_hosts)


def openssh_options(endpoint: SSHEndpoint, known_hosts: Path) -> list[str]:
    return [
        "-i", str(endpoint.key_path),
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes",
    ]


def ssh_command(endpoint: SSHEndpoint, known_hosts: Path) -> str:
    """The exact ``ssh`` line a human pastes to log into the VM."""
    args = ["ssh", "-p", str(endpoint.port), *openssh_options(endpoint, known_hosts),
            f"{endpoint.user}@{endpoint.host}"]
    return shlex.join(args)


def _open_transport(endpoint: SSHEndpoint, remaining: float) -> paramiko.Transport:
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=min(remaining, 10.0))
    try:
        transport = paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
    except BaseException:
        sock.close()
        raise
    try:
        options = transport.get_security_options()
        offered = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
        options.ciphers = tuple(offered + [c for c in options.ciphers if c not in offered])
        transport.banner_timeout = min(remaining, 30.0)
        transport.start_client(timeout=min(remaining, 30.0))
    except BaseException:
        transport.close()
        raise
    return transport


def _authenticate(transport: paramiko.Transport, endpoint: SSHEndpoint, key: paramiko.PKey) -> None:
    try:
        transport.auth_publickey(endpoint.user, key)
        return
    except paramiko.AuthenticationException as exc:
        refused = exc
    if endpoint.password is not None:
        try:
            transport.auth_password(endpoint.user, endpoint.password)
            return
        except paramiko.AuthenticationException as exc:
            refused = exc
    raise InfrastructureError(
        f"SSH authentication as '{endpoint.user}' with key {endpoint.key_path} was refused by "
        f"{endpoint.host}:{endpoint.port}"
        + (" (password also refused)" if endpoint.password is not None else ""),
        hint="the guest does not authorize this key for this user: rebuild the image "
        "(`harness images build <image>`) so that its authorized key matches the key file",
        detail=str(refused),
    )


def _check_deadline(deadline: float, verb: str, path: str, timeout: float) -> None:
    if time.monotonic() > deadline:
        raise RemoteTimeout(f"SFTP {verb} of {path} ran past its {timeout:g} s timeout")


class _NegotiatedCipher(Protocol):
    remote_cipher: str


def _remote_cipher(transport: paramiko.Transport) -> str:
    """The cipher negotiated for data sent to the peer.

    ``Transport`` sets ``remote_cipher`` in its constructor; types-paramiko declares only
    ``local_cipher``.
    """
    return cast(_NegotiatedCipher, transport).remote_cipher


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


def _relay(
    read: Callable[[int], bytes], write: Callable[[bytes], object], tick: Callable[[], object]
) -> bool:
    """Move one chunk from ``read`` to ``write``; False once the reading side is closed."""
    data = read(1 << 16)
    if not data:
        return False
    tick()
    write(data)
    return True


class _RefusedForwards(logging.Filter):
    """Drops paramiko's ERROR line for a forward the guest refused. Refusals are expected while a
    server starts (health polls race its listen) and each one is already in the VM's command log;
    a lasting one surfaces as the caller's own error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "open FAILED" not in record.getMessage()


REFUSED_FORWARD_FILTER = _RefusedForwards()  # one instance: addFilter keeps a single copy


class _PortForward:
    """A listener on 127.0.0.1:<ephemeral> whose connections go to the guest via direct-tcpip."""

    def __init__(
        self, transport: paramiko.Transport, guest_host: str, guest_port: int, log: CommandLog,
        trace: OperationTrace | None = None,
    ) -> None:
        self._transport = transport
        self._trace = trace
        self._target = (guest_host, guest_port)
        self._log = log
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        # Closing a socket does not wake a thread blocked in accept(): poll instead.
        self._listener.settimeout(0.5)
        self.local_port: int = self._listener.getsockname()[1]
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._open: list[tuple[socket.socket, paramiko.Channel]] = []
        self._threads: list[threading.Thread] = []
        log.note(f"forwarding 127.0.0.1:{self.local_port} -> guest {guest_host}:{guest_port}")
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"ssh-forward-{guest_port}", daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        logging.getLogger("paramiko.transport").addFilter(REFUSED_FORWARD_FILTER)
        while not self._closing.is_set():
            try:
                client, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            try:
                chan = self._transport.open_channel(
                    "direct-tcpip", self._target, peer, timeout=15.0
                )
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._log.note(f"forward to guest {self._target} refused: {exc}")
                client.close()
                continue
            with self._lock:
                if self._closing.is_set():
                    chan.close()
                    client.close()
                    return
                self._open.append((client, chan))
                pump = threading.Thread(target=self._pump, args=(client, chan), daemon=True)
                self._threads.append(pump)
            pump.start()

    def _pump(self, client: socket.socket, chan: paramiko.Channel) -> None:
        clock, opened = BusyClock(), time.time()
        try:
            while not self._closing.is_set():
                ends: list[socket.socket | paramiko.Channel] = [client, chan]
                ready, _, _ = select.select(ends, [], [], 0.5)
                if client in ready and not _relay(client.recv, chan.sendall, clock.sent):
                    break
                if chan in ready and not _relay(chan.recv, client.sendall, clock.received):
                    break
        except (OSError, paramiko.SSHException, EOFError):
            pass
        finally:
            chan.close()
            client.close()
            clock.finish()
            if self._trace is not None:
                self._trace.record("forward", opened, clock.busy_s, guest_port=self._target[1],
                                   requests=clock.requests)

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            for client, chan in self._open:
                chan.close()
                client.close()
            threads = list(self._threads)
        self._acceptor.join(timeout=5.0)
        for thread in threads:
            thread.join(timeout=5.0)
