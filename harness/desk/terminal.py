"""A terminal session in the guest: the host's terminal, put in raw mode, relayed to a PTY in the
guest over one SSH channel.

Raw mode is what makes it a real terminal: Ctrl-C, Ctrl-Z and Ctrl-D are bytes sent to the guest,
whose own line discipline turns them into signals for the program running there (the host's
harness never sees a SIGINT from the keyboard). A window resize on the host (SIGWINCH) is sent on
as a ``window-change`` request. The session ends when the guest's shell exits; its exit status
(the status of the last command, or the one given to ``exit``) is returned.

No deadline applies to the session itself: a person decides how long it lasts. SSH keepalives
(see ``SSHTransport.interactive_channel``) turn a guest that died under the session into a
dropped-connection error instead of a wait that never ends.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from harness.errors import InfrastructureError

READ_SIZE = 1 << 15
POLL_S = 0.2  # how soon a resize or a dropped connection is noticed while nothing is typed
DEFAULT_TERM = "xterm-256color"


class Channel(Protocol):
    """The slice of ``paramiko.Channel`` a terminal session uses."""

    def get_pty(self, term: str = ..., width: int = ..., height: int = ...) -> None: ...

    def exec_command(self, command: str) -> None: ...

    def resize_pty(self, width: int = ..., height: int = ...) -> None: ...

    def recv(self, nbytes: int) -> bytes: ...

    def recv_ready(self) -> bool: ...

    def sendall(self, data: bytes) -> None: ...

    def shutdown_write(self) -> None: ...

    def exit_status_ready(self) -> bool: ...

    def recv_exit_status(self) -> int: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


@dataclass(frozen=True)
class WindowSize:
    columns: int
    rows: int


def window_size(fd: int) -> WindowSize:
    """The terminal's size, or the environment's/80x24 when ``fd`` is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        size = shutil.get_terminal_size()
    return WindowSize(size.columns, size.lines)


@contextmanager
def raw_terminal(fd: int) -> Iterator[bool]:
    """Raw mode on ``fd`` for the block (yields False, changing nothing, when it is no terminal);
    the previous mode comes back however the block ends."""
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _ResizeFlag:
    """SIGWINCH only sets a flag: the relay loop sends the new size, never the signal handler
    (which could interrupt a send holding paramiko's transport lock)."""

    def __init__(self) -> None:
        self.pending = False
        self._previous: object = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True

    def install(self) -> None:
        if hasattr(signal, "SIGWINCH"):
            self._previous = signal.signal(signal.SIGWINCH, self._handle)

    def restore(self) -> None:
        if hasattr(signal, "SIGWINCH") and self._previous is not None:
            signal.signal(signal.SIGWINCH, self._previous)  # type: ignore[arg-type]


@contextmanager
def hangup_as_interrupt() -> Iterator[None]:
    """A closed terminal (SIGHUP) unwinds like Ctrl-C, so the VM behind the session is removed
    instead of the process dying with it still there."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGHUP, interrupt) if hasattr(signal, "SIGHUP") else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)


def run_terminal(channel: Channel, command: str, *, stdin_fd: int | None = None,
                 stdout_fd: int | None = None, term: str | None = None,
                 connected: Callable[[], bool] | None = None) -> int:
    """Run ``command`` in the guest on a PTY sized like the host's terminal; relay until it exits.

    ``connected`` is an optional callable returning False once the SSH connection is gone.
    Returns the command's exit status.
    """
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    size = window_size(out_fd if os.isatty(out_fd) else in_fd)
    channel.get_pty(term=term or os.environ.get("TERM") or DEFAULT_TERM, width=size.columns, height=size.rows)
    channel.exec_command(command)
    resize = _ResizeFlag()
    resize.install()
    try:
        with raw_terminal(in_fd):
            _relay(channel, in_fd, out_fd, resize, connected)
    finally:
        resize.restore()
    return channel.recv_exit_status()


def _relay(channel: Channel, in_fd: int, out_fd: int, resize: _ResizeFlag,
           connected: Callable[[], bool] | None) -> None:
    stdin_open = True
    while True:
        if resize.pending:
            resize.pending = False
            size = window_size(out_fd if os.isatty(out_fd) else in_fd)
            channel.resize_pty(width=size.columns, height=size.rows)
        watched: list[int] = [channel.fileno()] + ([in_fd] if stdin_open else [])
        ready, _, _ = select.select(watched, [], [], POLL_S)
        if channel.fileno() in ready or channel.recv_ready():
            data = channel.recv(READ_SIZE)
            if not data:
                return  # the guest closed the session: its shell exited
            _write_all(out_fd, data)
        if stdin_open and in_fd in ready:
            data = os.read(in_fd, READ_SIZE)
            if data:
                channel.sendall(data)
            else:
                stdin_open = False  # piped input ran out: the guest's shell sees end of input
                channel.shutdown_write()
        if channel.exit_status_ready() and not channel.recv_ready():
            return
        if connected is not None and not connected():
            raise InfrastructureError(
                "the SSH connection to the VM dropped during the shell session",
                hint="the VM may have crashed or been removed: see `harness gc --list`",
            )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
