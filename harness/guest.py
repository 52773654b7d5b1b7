"""What guest work needs from a VM: run a command, copy files, forward a port.

:class:`harness.vm.machine.Machine` provides it; the install, the server and the checks take this
protocol, so their logic runs against a fake guest in unit tests.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from harness.ssh import CommandResult, Transfer


class Guest(Protocol):
    """A running guest as the harness's guest work sees it."""

    def run(self, cmd: str, timeout: float = ..., env: Mapping[str, str] | None = None,
            cwd: str | None = None, check: bool = False, stdin: bytes | None = None) -> CommandResult: ...

    def put(self, local: Path | str, remote: str, mode: int | None = None, timeout: float = ...) -> Transfer: ...

    def get(self, remote: str, local: Path | str, timeout: float = ...) -> Transfer: ...

    def forward(self, guest_port: int, guest_host: str = ...) -> AbstractContextManager[int]: ...


def as_root_if_possible(command: str) -> str:
    """Run ``command`` as root when passwordless sudo works (to see root-only dirs), else as is."""
    quoted = shlex.quote(command)
    return f"if sudo -n true 2>/dev/null; then sudo -n /bin/sh -c {quoted}; else /bin/sh -c {quoted}; fi"
