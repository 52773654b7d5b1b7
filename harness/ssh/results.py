"""What a remote step hands back: a command's result, a failed command as an error, a verified copy."""

from __future__ import annotations

from dataclasses import dataclass

from harness.bounded import last_lines
from harness.errors import HarnessError


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
            detail=last_lines(result.stderr or result.stdout, 20),
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

