"""A record of every guest operation of a run, so a benchmark can redo the same work with plain
OpenSSH and tell the harness's own overhead from the guest's work (bench/bench_warm.py).

Off unless ``HARNESS_SSH_TRACE`` names a directory; then each SSH connection appends JSON lines to
a file of its own there: commands (with environment, working directory and stdin), file copies,
and the busy time of port-forwarded exchanges (request sent to last answer byte).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRACE_ENV = "HARNESS_SSH_TRACE"


class OperationTrace:
    """Appends one JSON line per operation; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls, label: str, environ: Mapping[str, str] | None = None) -> OperationTrace | None:
        directory = (os.environ if environ is None else environ).get(TRACE_ENV)
        if not directory:
            return None
        return cls(Path(directory) / f"{time.time_ns()}-{os.getpid()}-{label}.jsonl")

    def record(self, op: str, started: float, duration_s: float, **fields: Any) -> None:
        line = json.dumps({"op": op, "t": started, "s": round(duration_s, 6), **fields}, sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def command(self, cmd: str, env: Mapping[str, str] | None, cwd: str | None, stdin: bytes | None,
                started: float, duration_s: float, exit_code: int | None) -> None:
        self.record("run", started, duration_s, cmd=cmd, env=dict(env or {}), cwd=cwd,
                    stdin=base64.b64encode(stdin).decode() if stdin else "", exit=exit_code)


class BusyClock:
    """Busy time of one forwarded connection: from each request's first byte to the last byte of
    the answer that follows it (idle keep-alive time between requests is not counted)."""

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.requests = 0
        self._request_at: float | None = None
        self._answered_at: float | None = None

    def sent(self) -> None:
        now = time.monotonic()
        if self._request_at is None:
            self._request_at = now
        elif self._answered_at is not None:  # a new request after an answer: close the last one
            self._close()
            self._request_at = now

    def received(self) -> None:
        self._answered_at = time.monotonic()

    def finish(self) -> None:
        if self._request_at is not None:
            self._close()

    def _close(self) -> None:
        assert self._request_at is not None
        end = self._answered_at if self._answered_at is not None else time.monotonic()
        self.busy_s += max(0.0, end - self._request_at)
        self.requests += 1
        self._request_at, self._answered_at = None, None


class ForwardTap(BusyClock):
    """The busy clock of one port-forwarded connection, written to the trace when it ends."""

    def __init__(self, trace: OperationTrace, guest_port: int) -> None:
        super().__init__()
        self._trace = trace
        self._guest_port = guest_port
        self._opened = time.time()

    def finish(self) -> None:
        super().finish()
        self._trace.record("forward", self._opened, self.busy_s, guest_port=self._guest_port,
                           requests=self.requests)
