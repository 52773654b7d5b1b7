"""The release's inference server in a guest: start, wait until healthy, stop, collect logs.

The server is started exactly as the profile says (the product's own launcher when it has one),
reached through an SSH port forward, and polled on its health path. Between polls the harness
checks that the server process is still alive, so a server that crashes on start fails at once,
with the tails of its logs, instead of after the whole deadline.
"""

from __future__ import annotations

import shlex
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.errors import HarnessError, ProductDefect, RemoteTimeout
from harness.guest import Guest
from harness.profile import BoundProfile
from harness.waiting import attempts

POLL_INTERVAL_S = 0.5
PID_GRACE_S = 15.0  # a launcher may write its pid file a moment after returning
COMMAND_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 30
HEALTH_TIMEOUT_S = 10.0  # one health request; a server that takes longer is hung, not busy


class ServerFailed(ProductDefect):
    """The release's server did not start, did not become healthy, or did not stop cleanly."""


class ServerDied(ProductDefect):
    """The release's server stopped serving after it had started healthy: it stopped answering
    with nobody stopping it, or it did not start again after a check stopped it. Unlike
    ServerFailed it is no longer server_starts' finding, so it fails the checks it reaches."""


@dataclass(frozen=True)
class StopReport:
    command_exit: int | None
    command_output: str
    duration_s: float
    exited: bool  # the server process is gone
    port_closed: bool
    forced: bool  # the harness had to kill it

    @property
    def clean(self) -> bool:
        return self.command_exit == 0 and self.exited and self.port_closed and not self.forced

    def problems(self) -> list[str]:
        out = []
        if self.command_exit != 0:
            out.append(f"the stop command exited with {self.command_exit}: {self.command_output.strip()[-300:]}")
        if not self.exited:
            out.append("the server process was still alive after the stop timeout")
        if not self.port_closed:
            out.append("the server port still accepted connections after stopping")
        if self.forced:
            out.append("the harness had to kill the server (SIGKILL)")
        return out


class Server:
    """One server process in one guest; start/stop may be repeated (restart checks do)."""

    def __init__(self, guest: Guest, bound: BoundProfile, logs_dir: Path) -> None:
        self.guest = guest
        self.bound = bound
        self.profile = bound.profile
        self.spec = bound.server  # every template already rendered for this guest
        self.logs_dir = logs_dir
        self.local_port: int | None = None
        self.started_count = 0
        self.running = False  # started healthy and not stopped since: silence now means it died
        self.last_ready_s: float | None = None
        self._forward = ExitStack()
        self._http = httpx.Client(timeout=httpx.Timeout(HEALTH_TIMEOUT_S, connect=5.0), trust_env=False)

    @property
    def base_url(self) -> str:
        if self.local_port is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self.local_port}"

    @property
    def pid_file(self) -> str:
        return self.spec.pid_file

    def _ensure_forward(self) -> int:
        if self.local_port is None:
            self.local_port = self._forward.enter_context(self.guest.forward(self.spec.port))
        return self.local_port

    # -- start -------------------------------------------------------------------------------

    def start(self) -> float:
        """Start and wait until healthy; returns seconds to ready. Raises ServerFailed."""
        started = time.monotonic()
        self._ensure_forward()
        env = dict(self.spec.env)
        command = self.spec.start
        # A launcher may itself wait for readiness before returning (refapp and tiles do).
        limit = self.spec.ready_timeout_s + COMMAND_TIMEOUT_S
        try:
            result = self.guest.run(command, timeout=limit, env=env, cwd=self.spec.cwd)
        except RemoteTimeout as exc:
            raise ServerFailed(
                f"the start command did not return within {limit:g} s: {command}",
                hint="a start command must put the server in the background and return",
                detail=exc.detail,
            ) from None
        if not result.ok:
            raise ServerFailed(
                f"the start command exited with {result.exit_code}: {command}",
                hint="see its output and the server logs below",
                detail=(result.stdout + result.stderr)[-2000:] + self.log_tails(),
            )
        self.started_count += 1
        self._wait_healthy(started)
        if self.spec.load is not None:
            self._load_model()
        self.last_ready_s = time.monotonic() - started
        self.running = True
        return self.last_ready_s

    def _wait_healthy(self, started: float) -> None:
        url = f"{self.base_url}{self.spec.health_path}"
        last = "no answer yet"
        for _ in attempts(self.spec.ready_timeout_s, POLL_INTERVAL_S, since=started):
            try:
                reply = self._http.get(url)
                if reply.status_code == 200:
                    return
                last = f"HTTP {reply.status_code}: {reply.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            state = self.process_state()
            if state == "dead" or (state == "no pid" and time.monotonic() - started > PID_GRACE_S):
                raise ServerFailed(
                    f"the server process died before it became healthy ({state}; last probe: {last})",
                    hint="the server crashed on start: its log tails below say why",
                    detail=self.log_tails(),
                )
        raise ServerFailed(
            f"the server did not answer {self.spec.health_path} with 200 within "
            f"{self.spec.ready_timeout_s:g} s (last probe: {last})",
            hint="it runs but never got ready: too slow, wrong port, or stuck; see the logs",
            detail=self.log_tails(),
        )

    def _load_model(self) -> None:
        load = self.spec.load
        assert load is not None
        body = dict(load.json)
        try:
            reply = self._http.request(load.method, f"{self.base_url}{load.path}", json=body, timeout=load.timeout_s)
        except httpx.HTTPError as exc:
            raise ServerFailed(f"loading the model ({load.method} {load.path}) failed: {exc}",
                               detail=self.log_tails()) from None
        if reply.status_code >= 400:
            raise ServerFailed(f"loading the model ({load.method} {load.path}) answered HTTP {reply.status_code}",
                               detail=reply.text[:2000] + self.log_tails())

    # -- state -------------------------------------------------------------------------------

    def process_state(self) -> str:
        """``running``, ``dead`` (pid file names a gone process) or ``no pid`` (no pid file)."""
        pid_file = shlex.quote(self.pid_file)
        result = self.guest.run(
            f"test -s {pid_file} || {{ echo nopid; exit 0; }}; "
            f"if kill -0 \"$(cat {pid_file})\" 2>/dev/null; then echo running; else echo dead; fi",
            timeout=30,
        )
        word = result.stdout.strip()
        return {"nopid": "no pid", "running": "running", "dead": "dead"}.get(word, "dead")

    def unhealthy_because(self) -> str:
        """Empty when the health path answers 200, else what happened instead."""
        if self.local_port is None:
            return "it was never started"
        try:
            status = self._http.get(f"{self.base_url}{self.spec.health_path}").status_code
        except httpx.TimeoutException:
            return f"its health check did not answer within {HEALTH_TIMEOUT_S:g} s"
        except httpx.HTTPError as exc:
            return f"its health check failed: {type(exc).__name__} (connection refused or closed)"
        return "" if status == 200 else f"its health check answered HTTP {status}"

    def _port_open(self) -> bool:
        """Whether anything accepts on the server port inside the guest (bash's /dev/tcp)."""
        probe = shlex.quote(f"exec 3<>/dev/tcp/127.0.0.1/{self.spec.port}")
        result = self.guest.run(f"bash -c {probe} 2>/dev/null && echo open || echo closed", timeout=30)
        return "open" in result.stdout

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> StopReport:
        """Stop as the profile says, then verify; kill what is left so the VM stays usable."""
        started = time.monotonic()
        self.running = False
        pid = self.guest.run(f"cat {shlex.quote(self.pid_file)} 2>/dev/null", timeout=30).stdout.strip()
        command = self.spec.stop
        try:
            result = self.guest.run(command, timeout=self.spec.stop_timeout_s + COMMAND_TIMEOUT_S,
                                    cwd=self.spec.cwd)
            exit_code, output = result.exit_code, result.stdout + result.stderr
        except RemoteTimeout as exc:
            exit_code, output = None, f"stop command timed out: {exc.detail}"
        exited = self._wait_gone(pid, started)
        forced = False
        if not exited and pid.isdigit():
            self.guest.run(f"kill -KILL {pid} 2>/dev/null; true", timeout=30)
            forced = True
        port_closed = not self._port_open()
        return StopReport(exit_code, output, time.monotonic() - started, exited, port_closed, forced)

    def _wait_gone(self, pid: str, started: float) -> bool:
        if not pid.isdigit():
            return True  # no pid recorded: nothing we could wait for
        for _ in attempts(self.spec.stop_timeout_s, POLL_INTERVAL_S, since=started):
            if not self.guest.run(f"kill -0 {pid} 2>/dev/null", timeout=30).ok:
                return True
        return False

    def close(self) -> None:
        """Best-effort stop (the VM is about to go anyway) and release the forward."""
        try:
            if self.started_count and self.process_state() == "running":
                self.stop()
        except HarnessError:
            pass
        finally:
            self._forward.close()
            self.local_port = None
            self._http.close()

    # -- logs --------------------------------------------------------------------------------

    def log_paths(self) -> list[str]:
        return list(self.spec.logs)

    def log_tails(self) -> str:
        """The last lines of every server log, for an attachment or an error message."""
        parts = []
        for path in self.log_paths():
            result = self.guest.run(f"tail -n {LOG_TAIL_LINES} {shlex.quote(path)} 2>&1", timeout=30)
            parts.append(f"\n--- {path} (last {LOG_TAIL_LINES} lines) ---\n{result.stdout.rstrip()}")
        return "".join(parts)

    def collect_logs(self) -> list[Path]:
        """Copy every server log that exists to the host; returns the host paths."""
        copied = []
        for path in self.log_paths():
            if not self.guest.run(f"test -f {shlex.quote(path)}", timeout=30).ok:
                continue
            local = self.logs_dir / Path(path).name
            try:
                self.guest.get(path, local)
                copied.append(local)
            except HarnessError:
                continue  # a log rotated away mid-copy must not fail the run
        return copied
