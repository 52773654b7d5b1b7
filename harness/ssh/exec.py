"""Commands in the guest: run in the login shell with a deadline, the whole process group killed
when it overruns, output kept bounded, every command and its outcome in the VM's command log."""

from __future__ import annotations

import select
import shlex
import time
from collections.abc import Mapping

import paramiko

from harness.bounded import dropped_note, last_lines
from harness.errors import InfrastructureError, RemoteTimeout
from harness.ssh.command_log import CommandLog
from harness.ssh.endpoint import SSHEndpoint
from harness.ssh.results import CommandResult, RemoteCommandFailed
from harness.ssh.trace import OperationTrace

KILL_GRACE_S = 2.0
# Per stream, kept at each end of a command's output (a file-system listing fits well inside).
OUTPUT_KEEP_BYTES = 16 * 1024 * 1024
_PID_MARKER = "hnspid:"


def wrap_command(cmd: str, env: Mapping[str, str] | None, cwd: str | None) -> str:
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
        return self.head.decode(errors="replace") + dropped_note(self.dropped) + self.tail.decode(errors="replace")


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


class RemoteShell:
    """Runs commands over one SSH connection (a session channel per command)."""

    def __init__(self, transport: paramiko.Transport, endpoint: SSHEndpoint, log: CommandLog,
                 trace: OperationTrace | None) -> None:
        self._transport = transport
        self.endpoint = endpoint
        self.log = log
        self.trace = trace

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
        chan = self.open_session(timeout)
        output = _Output()
        try:
            chan.exec_command(wrap_command(cmd, env, cwd))
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
                detail=f"stdout tail:\n{last_lines(out, 15)}\nstderr tail:\n{last_lines(err, 15)}",
                stdout=out, stderr=err,
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

    def open_session(self, timeout: float) -> paramiko.Channel:
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
            chan = self.open_session(10.0)
            try:
                chan.exec_command(script)
                chan.shutdown_write()
                chan.status_event.wait(KILL_GRACE_S + 10.0)
            finally:
                chan.close()
            self.log.note(f"killed process group {pid}")
        except (InfrastructureError, paramiko.SSHException, OSError) as exc:
            self.log.note(f"could not kill process group {pid}: {exc}")
