"""A minimal QMP (QEMU Machine Protocol) client: enough to tell QEMU is up, power a guest
down, quit, and later save/restore a warm VM (``stop``/``migrate``/``cont`` are plain commands).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from harness.errors import InfrastructureError


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
    """One QMP session; every read has a deadline, events are skipped."""

    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self._timeout_s = timeout_s
        self._sock = connect_unix(path, timeout_s)
        self._reader = self._sock.makefile("rb")
        greeting = self._read_message()
        if "QMP" not in greeting:
            self.close()
            raise InfrastructureError(f"{path} did not greet like QMP: {greeting!r}")
        self.execute("qmp_capabilities")

    def _read_message(self) -> dict[str, Any]:
        line = self._reader.readline()
        if not line:
            raise ConnectionError("QMP connection closed")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run a command and return its ``return`` value; InfrastructureError on a QMP error."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            message = self._read_message()
            if "return" in message:
                return message["return"]
            if "error" in message:
                raise InfrastructureError(f"QMP {command} failed: {message['error'].get('desc', message)}")
        raise TimeoutError(f"QMP {command}: no answer in {self._timeout_s}s")

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
