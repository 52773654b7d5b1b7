"""The per-VM command log: every command, its exit and output, and notes, in one file."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from harness.bounded import both_ends
from harness.ssh.results import CommandResult

# Per stream and command: the log is for people, and a file-system listing or a flood of output
# would otherwise land in it whole, every time.
LOG_KEEP_BYTES = 256 * 1024


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
            lines += [f"  | {line}\n" for line in both_ends(result.stdout, LOG_KEEP_BYTES).splitlines()]
            lines += [f"  ! {line}\n" for line in both_ends(result.stderr, LOG_KEEP_BYTES).splitlines()]
        self._append("".join(lines))

    def _append(self, text: str) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)
