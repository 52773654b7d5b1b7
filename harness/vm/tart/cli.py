"""tart's command line as the provider uses it: its settings (from the environment), the Softnet
policy that keeps a guest offline, and one command run with a deadline and logged."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InfrastructureError, MissingToolError, UsageError

DEFAULT_GATEWAY = "192.168.64.1"


@dataclass(frozen=True)
class SoftnetPolicy:
    """Which Softnet flags cut the guest off; ``mode`` is ``host``, ``gateway`` or ``off``.

    ``host`` uses ``--net-softnet-allow=@host`` (Softnet 0.19+); ``gateway`` allows the gateway's
    /32 for older Softnet; ``off`` leaves the guest online (debugging only: the suite's offline
    checks will then report egress).
    """

    mode: str = "host"
    gateway: str = DEFAULT_GATEWAY

    @classmethod
    def parse(cls, text: str) -> SoftnetPolicy:
        mode, _, gateway = text.strip().partition(":")
        if mode not in {"host", "gateway", "off"}:
            raise UsageError(
                f"unknown Softnet policy {text!r}",
                hint="use HARNESS_TART_SOFTNET=host (Softnet 0.19+), gateway[:IP] (older Softnet) or off",
            )
        return cls(mode=mode, gateway=gateway or DEFAULT_GATEWAY)

    def run_flags(self) -> list[str]:
        if self.mode == "off":
            return []
        allow = "@host" if self.mode == "host" else f"{self.gateway}/32"
        return ["--net-softnet-block=0.0.0.0/0", f"--net-softnet-allow={allow}"]


@dataclass(frozen=True)
class TartSettings:
    """How to drive tart on this host; ``from_env`` reads the ``HARNESS_TART_*`` variables."""

    binary: str = "tart"
    user: str = "admin"
    password: str | None = "admin"
    ssh_port: int = 22  # real tart guests listen on 22; only the stand-in needs another port
    cpu: int = 4
    memory_mb: int = 8192
    softnet: SoftnetPolicy = field(default_factory=SoftnetPolicy)
    resolvers: tuple[str, ...] = ("dhcp", "agent")  # arp cannot see Softnet guests
    max_running: int = 2  # Apple's licence and Virtualization.framework limit per host
    clone_timeout_s: float = 3600.0  # a first pull of a macOS image is tens of GB
    command_timeout_s: float = 60.0
    ip_poll_s: int = 5
    start_grace_s: float = 3.0
    extra_run_args: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TartSettings:
        env = os.environ if environ is None else environ
        default = cls()

        def number(key: str, fallback: float) -> float:
            raw = env.get(key)
            if raw is None or raw == "":
                return fallback
            try:
                return float(raw)
            except ValueError:
                raise UsageError(f"{key}={raw!r} is not a number", hint=f"set {key} to a number") from None

        return cls(
            binary=env.get("HARNESS_TART_BIN") or default.binary,
            user=env.get("HARNESS_TART_USER") or default.user,
            password=env.get("HARNESS_TART_PASSWORD", default.password) or None,
            ssh_port=int(number("HARNESS_TART_SSH_PORT", default.ssh_port)),
            cpu=int(number("HARNESS_TART_CPU", default.cpu)),
            memory_mb=int(number("HARNESS_TART_MEMORY_MB", default.memory_mb)),
            softnet=SoftnetPolicy.parse(env.get("HARNESS_TART_SOFTNET", "host")),
            resolvers=tuple(r for r in env.get("HARNESS_TART_RESOLVERS", "dhcp,agent").split(",") if r),
            max_running=int(number("HARNESS_TART_MAX_VMS", default.max_running)),
            clone_timeout_s=number("HARNESS_TART_CLONE_TIMEOUT", default.clone_timeout_s),
            extra_run_args=tuple((env.get("HARNESS_TART_RUN_ARGS") or "").split()),
        )


@dataclass(frozen=True)
class TartResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        return (self.stderr.strip() or self.stdout.strip())[-2000:]


class TartCLI:
    """Runs one tart command with a deadline; every call and its outcome go to a log file."""

    def __init__(self, binary: str, log_path: Path) -> None:
        self.binary = binary
        self.log_path = log_path

    def env(self) -> dict[str, str]:
        # Without it a clone may prune cached images that other runs are about to use.
        return {**os.environ, "TART_NO_AUTO_PRUNE": "1"}

    def resolve_binary(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise MissingToolError(
                f"the tart binary {self.binary!r} was not found",
                hint="on an Apple Silicon Mac install tart (brew install cirruslabs/cli/tart) or point "
                "HARNESS_TART_BIN at it; on Linux use the stand-in: "
                "HARNESS_TART_BIN=$(python -m harness.testing.tart_standin shim DIR) (see vm_images/macos/README.md)",
            )
        return found

    def __call__(self, *args: str, timeout_s: float) -> TartResult:
        command = [self.resolve_binary(), *args]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, env=self.env(), stdin=subprocess.DEVNULL, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            self._log(args, "timeout", time.monotonic() - started, str(exc.stderr or ""))
            raise InfrastructureError(
                f"`tart {' '.join(args)}` did not finish within {timeout_s:.0f} s",
                hint="the tart host may be overloaded or hung; check `tart list` on it",
            ) from None
        result = TartResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)
        self._log(args, f"exit {proc.returncode}", time.monotonic() - started, result.message)
        return result

    def note_detached(self, command: Sequence[str], pid: int) -> None:
        self._log(command[1:], f"detached as pid {pid}", 0.0, "")

    def _log(self, args: Sequence[str], outcome: str, duration_s: float, output: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} tart {' '.join(args)} -> {outcome} in {duration_s:.1f}s\n")
            if output:
                fh.write("  " + output.replace("\n", "\n  ") + "\n")
