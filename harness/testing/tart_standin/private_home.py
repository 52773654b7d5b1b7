"""A private ``$TART_HOME`` plus a ``tart`` shim, for tests that drive the stand-in.

Every test gets its own home, so the stand-in's VM limit, lease table and golden images never
leak between tests; ``close()`` stops whatever ``run`` processes are still up.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.testing.tart_standin.home import TartHome
from harness.testing.tart_standin.shim import write_shim
from harness.waiting import attempts


@dataclass
class StandinHome:
    root: Path
    backend: str = "idle"  # idle | loopback | qemu
    ssh_port: int = 22022
    extra_env: dict[str, str] = field(default_factory=dict)
    _runs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shim = write_shim(self.root / "bin")
        self.home = TartHome(self.root / "tart-home")

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            **os.environ,
            "TART_HOME": str(self.home.root),
            "TART_STANDIN_BACKEND": self.backend,
            "TART_STANDIN_SSH_PORT": str(self.ssh_port),
            **self.extra_env,
            **overrides,
        }

    def export_tart_env(self, setenv: Callable[[str, str], None]) -> None:
        """Point this process's tart (the provider under test) at the stand-in: ``setenv`` is
        e.g. ``monkeypatch.setenv``, so the change ends with the test."""
        for key, value in self.env().items():
            if key.startswith("TART"):
                setenv(key, value)

    def tart(self, *args: str, timeout_s: float = 60, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.shim), *args], capture_output=True, text=True, timeout=timeout_s, env=self.env(**(env or {})), check=False,
        )

    def golden(self, name: str = "golden", backing: str = "linux-debian12", *extra: str) -> str:
        result = self.tart("standin-import", name, "--backing", backing, *extra)
        assert result.returncode == 0, result.stderr
        return name

    def start_run(self, name: str, *flags: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(self.shim), "run", name, "--no-graphics", *flags],
            stdout=(self.root / f"run-{name}.log").open("ab"), stderr=subprocess.STDOUT,
            env=self.env(**(env or {})), start_new_session=True,
        )
        self._runs.append(proc)
        return proc

    def wait_running(self, name: str, timeout_s: float = 15, key: str = "address") -> None:
        """Until the run state has ``key``: ``address`` (leased) or ``ssh_port`` (SSH relayed)."""
        for _ in attempts(timeout_s, 0.1):
            if self.home.vm(name).run_state().get(key):
                return
        raise AssertionError(f"{name} did not reach running: {self.run_log(name)}")

    def run_log(self, name: str) -> str:
        path = self.root / f"run-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for proc in self._runs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
