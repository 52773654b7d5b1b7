"""QMP (QEMU Machine Protocol) through the ``qemu.qmp`` library, synchronous and with a deadline on
every step: enough to tell QEMU is up, power a guest down, quit, and save/restore a warm VM
(``stop``/``migrate``/``cont`` are plain commands).

``qemu.qmp``'s own sync wrapper (``qemu.qmp.legacy.QEMUMonitorProtocol``) waits for the greeting
without a timeout and runs on the thread's shared event loop, so this class drives the library's
asyncio ``QMPClient`` on an event loop of its own, each call bounded by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import qemu.qmp
from qemu.qmp.qmp_client import GreetingError

from harness.errors import InfrastructureError

T = TypeVar("T")


def connect_unix(path: Path, timeout_s: float) -> socket.socket:
    """Connect to a Unix socket whose absolute path may exceed the 108-byte sun_path limit.

    The directory is opened and the socket reached through ``/proc/self/fd/<n>/<name>``, which is
    short whatever the state directory (pytest's tmp paths are long).
    """
    directory_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(f"/proc/self/fd/{directory_fd}/{path.name}")
    except OSError:
        sock.close()
        raise
    finally:
        os.close(directory_fd)
    return sock


class QMPClient:
    """One QMP session; connecting (greeting and capabilities included), each command and closing
    each have ``timeout_s``; events are left unread.

    Errors as callers catch them: OSError (TimeoutError, ConnectionError) when the socket is dead,
    silent or hangs up; InfrastructureError for a QMP error reply or a peer that is not QMP.
    """

    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self._path = path
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._qmp = qemu.qmp.QMPClient(path.name)
        try:
            # Connected here, not by the library: it cannot reach a path longer than sun_path.
            sock = connect_unix(path, timeout_s)
            self._run(self._qmp.connect(sock), "connect")
        except BaseException:
            self._close_loop()
            raise

    def _run(self, step: Coroutine[Any, Any, T], what: str) -> T:
        try:
            return self._loop.run_until_complete(asyncio.wait_for(step, self._timeout_s))
        except TimeoutError:
            raise TimeoutError(f"QMP {what} on {self._path}: no answer in {self._timeout_s}s") from None
        except qemu.qmp.ExecuteError as exc:
            raise InfrastructureError(f"QMP {what} failed: {exc}") from None
        except qemu.qmp.ConnectError as exc:
            if isinstance(exc.exc, GreetingError):
                raise InfrastructureError(f"{self._path} did not greet like QMP: {exc}") from None
            raise ConnectionError(f"QMP {what} on {self._path} failed: {exc}") from None
        except qemu.qmp.QMPError as exc:  # interrupted: the connection closed under the command
            raise ConnectionError(f"QMP {what} on {self._path}: {exc}") from None

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run a command and return its ``return`` value; InfrastructureError on a QMP error."""
        return self._run(self._qmp.execute(command, arguments or None), command)

    def close(self) -> None:
        try:
            # Whatever ended the session (QEMU quit, a dead socket) is not the caller's concern.
            self._run(self._qmp.disconnect(), "disconnect")
        except (OSError, EOFError, InfrastructureError, qemu.qmp.QMPError):
            pass
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        """Close the event loop, cancelling what a disconnect that timed out left running."""
        leftover = asyncio.all_tasks(self._loop)
        for task in leftover:
            task.cancel()
        if leftover:
            self._loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
