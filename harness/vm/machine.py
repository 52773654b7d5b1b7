"""One throw-away VM as a context manager, with a small testinfra-like API for assertions.

    slot -> clone -> start -> wait_ready -> SSH  (yield)  -> stop -> delete -> free slot

Every phase is timed (and journaled when a journal is given); the VM's command log and console log
land in its artifacts directory. The keep policy decides what happens at the end: ``never`` deletes
the VM, ``always`` keeps it, ``on-failure`` keeps it when the body failed. A kept VM prints how to
log in and how to remove it. An interrupt (Ctrl-C, SIGTERM) always deletes: nothing is left behind.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from harness.config import HostPaths
from harness.errors import HarnessError, InfrastructureError, RemoteTimeout, UsageError
from harness.host.interrupts import SigtermAsInterrupt, interrupts_deferred
from harness.host.run_label import Lease, LeaseBook, VMName
from harness.host.slots import Slot, SlotPool
from harness.journal import Journal, PhaseRecord
from harness.run_options import KEEP_POLICIES, KeepPolicy
from harness.ssh import CommandResult, SSHTransport, Transfer, ssh_command
from harness.ssh.endpoint import SSHEndpoint
from harness.vm.provider import Provider, VMOptions
from harness.vm.watchdog import Watchdog

DEFAULT_COMMAND_TIMEOUT_S = 120.0
CONSOLE_LOG_LINES = 100_000
VM_EXIT_GRACE_S = 10.0
CRASH_LINE = re.compile(r"Kernel panic|Oops|BUG:|Out of memory")

Say = Callable[[str], None]
PhaseSink = Callable[[PhaseRecord], None]


def parse_keep_policy(text: str) -> KeepPolicy:
    if text not in KEEP_POLICIES:
        raise UsageError(f"--keep-vm={text} is not a policy",
                         hint=f"use one of: {', '.join(KEEP_POLICIES)}")
    return text  # type: ignore[return-value]


@dataclass(frozen=True)
class MachineSettings:
    image: str
    run_id: str
    artifacts_root: Path  # the VM's logs go to <artifacts_root>/<vm name>/
    keep: KeepPolicy = "never"
    boot_timeout_s: float = 600.0
    slot_timeout_s: float = 3600.0
    ssh_connect_s: float = 60.0
    # The disk is thrown away: a graceful guest shutdown buys nothing but time.
    stop_timeout_s: float = 0.0
    options: VMOptions | None = None  # hardware, traffic capture; None = the provider's defaults


class Machine(AbstractContextManager["Machine"]):
    """A VM from ``provider`` cloned from ``settings.image``; ``with Machine(...) as vm: vm.run(...)``."""

    def __init__(
        self,
        provider: Provider,
        settings: MachineSettings,
        *,
        slots: SlotPool,
        paths: HostPaths | None = None,
        journal: Journal | None = None,
        on_phase: PhaseSink | None = None,
        on_ready: Callable[[Machine], None] | None = None,
        say: Say = print,
        watchdog: Watchdog | None = None,
        slot: Slot | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.name = VMName.new(settings.run_id)
        self.artifacts = settings.artifacts_root / str(self.name)
        self.timings: dict[str, float] = {}
        self._paths = paths or HostPaths.from_env()
        self._slots = slots
        self._leases = LeaseBook(self._paths.state / "leases")
        self._journal = journal
        self._on_phase = on_phase
        self._on_ready = on_ready
        self._say = say
        self._sigterm = SigtermAsInterrupt()
        # The run's watchdog removes this VM if this process dies; without one given, the
        # Machine starts a watchdog of its own and ends it when it closes.
        self._watchdog = watchdog
        self._own_watchdog = watchdog is None
        self._watched = False
        # A slot reserved by the caller (a VM started beside another one) is this VM's to free.
        self._slot: Slot | None = slot
        self._ssh: SSHTransport | None = None
        self._endpoint: SSHEndpoint | None = None
        self._created = False  # something may exist at the provider: delete it at the end
        self._started = False  # the hypervisor ran: only such a VM is worth keeping
        self._closed = False
        self._close_lock = threading.Lock()
        self.kept = False

    # -- life cycle -------------------------------------------------------------------------

    @property
    def image(self) -> str:
        return self.settings.image

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(failed=exc is not None, interrupted=isinstance(exc, KeyboardInterrupt))

    def start(self) -> Self:
        """Boot the VM and connect; on any failure (or interrupt) everything made so far goes."""
        self._sigterm.install()
        label = f"{self.name} ({self.settings.image})"
        try:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            if self._slot is None:
                with self._phase("slot_wait"):
                    self._slot = self._slots.acquire(self.settings.slot_timeout_s, label=label)
            self._leases.write(Lease.for_this_process(
                str(self.name), self.provider.name, self.image, artifacts=str(self.artifacts)))
            self._watch()
            boot_started = time.monotonic()
            with self._phase("clone"):
                self._created = True  # a half-made clone must be deleted too
                self.provider.clone(self.image, self.name, self.settings.options)
            with self._phase("start"):
                self.provider.start(self.name)
            self._started = True
            with self._phase("ready"):
                remaining = self.settings.boot_timeout_s - (time.monotonic() - boot_started)
                self._endpoint = self.provider.wait_ready(self.name, max(remaining, 1.0))
            with self._phase("connect"):
                self._ssh = SSHTransport.connect(
                    self._endpoint,
                    known_hosts=self.artifacts / "known_hosts",
                    log_path=self.artifacts / "commands.log",
                    deadline_s=self.settings.ssh_connect_s,
                )
            self._record("boot", time.monotonic() - boot_started)
            if self._on_ready is not None:
                self._on_ready(self)
        except BaseException as exc:
            self.close(failed=True, interrupted=isinstance(exc, KeyboardInterrupt),
                       boot_error=exc)
            raise
        return self

    def _watch(self) -> None:
        """Tell the watchdog before the VM exists: a clone interrupted half-way is removed too."""
        if self._watchdog is None:
            self._watchdog = Watchdog.spawn(self._paths, self.artifacts / "watchdog.log")
        self._watchdog.watch(self.provider.name, str(self.name))
        self._watched = True

    def _unwatch(self) -> None:
        if self._watchdog is None:
            return
        try:
            if self._watched:
                self._watchdog.release(str(self.name))
        except InfrastructureError as exc:
            self._say(str(exc))
        if self._own_watchdog:
            self._watchdog.close()

    def close(self, failed: bool = False, interrupted: bool = False,
              boot_error: BaseException | None = None) -> None:
        """Stop and delete the VM (or keep it, per policy); safe to call twice.

        Runs to its end through Ctrl-C/SIGTERM (they are re-raised afterwards).
        """
        with self._close_lock:  # a VM cancelled from another thread is closed once
            if self._closed:
                return
            self._closed = True
        try:
            with interrupts_deferred():
                self._close(failed, interrupted, boot_error)
        finally:
            # After the deferral has put its handlers back, so that this one is not overwritten.
            self._sigterm.restore()

    def _close(self, failed: bool, interrupted: bool, boot_error: BaseException | None) -> None:
        boot_failed = boot_error is not None and self._ssh is None
        if boot_error is not None:
            self._attach_console(boot_error)
        keep = not interrupted and (
            self.settings.keep == "always" or (self.settings.keep == "on-failure" and failed)
        )
        errors: list[str] = []
        try:
            with self._phase("teardown"):
                self._save_console()
                if keep and self._started:
                    self._keep(boot_failed)
                elif self._created:
                    errors += self._destroy()
                else:
                    self._leases.remove(str(self.name))
            if not errors:
                # Removed or kept on purpose: nothing left for the watchdog. A VM that could not
                # be removed stays watched, so the watchdog tries again once this process ends.
                self._unwatch()
            elif self._own_watchdog and self._watchdog is not None:
                self._watchdog.close()
        finally:
            if self._slot is not None:
                self._slot.release()
        if errors:
            raise InfrastructureError(
                f"VM {self.name} could not be fully removed: {'; '.join(errors)}",
                hint=f"run `harness gc --name {self.name}`",
            )

    def _destroy(self) -> list[str]:
        errors: list[str] = []
        if self._ssh is not None:
            self._ssh.close()
        for step, action in (
            ("stop", lambda: self.provider.stop(self.name, self.settings.stop_timeout_s)),
            ("delete", lambda: self.provider.delete(self.name)),
        ):
            try:
                action()
            except (HarnessError, OSError) as exc:
                errors.append(f"{step}: {exc}")
        if not errors:
            self._leases.remove(str(self.name))
        return errors

    def _keep(self, boot_failed: bool) -> None:
        if self._ssh is not None:
            self._ssh.close()
        self.kept = True
        login = self.ssh_command() if self._endpoint is not None else ""
        self._leases.mark_kept(str(self.name), login)
        lines = [f"kept VM {self.name} ({self.image}); logs in {self.artifacts}"]
        if login:
            lines.append(f"  log in:  {login}")
        elif boot_failed:
            lines.append("  it never answered SSH: see console.log in the logs")
        lines.append(f"  remove:  harness gc --name {self.name}")
        self._say("\n".join(lines))

    # -- timings and logs -------------------------------------------------------------------

    @contextmanager
    def _phase(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            self._record(phase, time.monotonic() - started, ok)

    def _record(self, phase: str, duration_s: float, ok: bool = True) -> None:
        self.timings[phase] = duration_s
        record = PhaseRecord(target=self.image, phase=f"vm_{phase}", duration_s=duration_s, ok=ok)
        if self._journal is not None:
            self._journal.write(record)
        if self._on_phase is not None:
            self._on_phase(record)

    def console_tail(self, lines: int = 60) -> str:
        try:
            return self.provider.console_tail(self.name, lines)
        except (HarnessError, OSError) as exc:
            return f"(console log unavailable: {exc})"

    def _save_console(self) -> None:
        try:
            (self.artifacts / "console.log").write_text(self.console_tail(CONSOLE_LOG_LINES))
        except OSError as exc:  # evidence is nice to have; removing the VM is a must
            self._say(f"could not save the console log of {self.name}: {exc}")

    def _attach_console(self, exc: BaseException) -> None:
        """Boot failures carry the console tail (unless the provider's error already does)."""
        if isinstance(exc, HarnessError) and not exc.detail:
            exc.detail = f"console tail of {self.name}:\n{self.console_tail()}"

    # -- the API tests use --------------------------------------------------------------------

    @property
    def ssh(self) -> SSHTransport:
        if self._ssh is None or self._closed:
            raise InfrastructureError(f"VM {self.name} is not running (not started or closed)")
        return self._ssh

    @property
    def endpoint(self) -> SSHEndpoint:
        if self._endpoint is None:
            raise InfrastructureError(f"VM {self.name} has not answered SSH yet")
        return self._endpoint

    def ssh_command(self) -> str:
        return ssh_command(self.endpoint, self.artifacts / "known_hosts")

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """A lost connection says whether the VM itself is gone, with the console's last words
        (a kernel panic, an OOM kill), so the broken check names the fault, not just SSH."""
        try:
            yield
        except RemoteTimeout:
            raise
        except InfrastructureError as exc:
            state = self._vm_state_settled()
            if state != "running":
                exc.message += f"; VM {self.name} is no longer running ({state})"
                exc.detail = "\n".join(filter(None, [
                    exc.detail, f"console of {self.name}, its last words:", self._last_words()]))
            raise

    def _last_words(self, lines: int = 40) -> str:
        """The console's end, starting at the kernel's own account of a crash when there is one
        (a panic's register dump would otherwise push its first line out of the tail)."""
        tail = self.console_tail(lines * 3).splitlines()
        start = next((i for i, line in enumerate(tail) if CRASH_LINE.search(line)), max(len(tail) - lines, 0))
        return "\n".join(tail[start:start + lines])

    def _vm_state_settled(self) -> str:
        """The VM's state, given a moment to change: a guest that dies closes its connections a
        little before its hypervisor has finished exiting."""
        deadline = time.monotonic() + VM_EXIT_GRACE_S
        state = self._vm_state()
        while state == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            state = self._vm_state()
        return state

    def _vm_state(self) -> str:
        try:
            found = [info.state for info in self.provider.list() if info.name == str(self.name)]
        except (HarnessError, OSError) as exc:
            return f"unknown: {exc}"
        return found[0] if found else "gone"

    def run(self, cmd: str, timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            check: bool = False, stdin: bytes | None = None) -> CommandResult:
        with self._explained():
            return self.ssh.run(cmd, timeout=timeout, env=env, cwd=cwd, check=check, stdin=stdin)

    def sudo(self, cmd: str, timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
             check: bool = False) -> CommandResult:
        """``cmd`` as root through passwordless sudo (never prompts)."""
        return self.run(f"sudo -n /bin/sh -c {shlex.quote(cmd)}", timeout=timeout, check=check)

    def put(self, local: Path | str, remote: str, mode: int | None = None,
            timeout: float = 900.0) -> Transfer:
        with self._explained():
            return self.ssh.put(local, remote, mode=mode, timeout=timeout)

    def get(self, remote: str, local: Path | str, timeout: float = 900.0) -> Transfer:
        with self._explained():
            return self.ssh.get(remote, local, timeout=timeout)

    def forward(self, guest_port: int, guest_host: str = "127.0.0.1") -> AbstractContextManager[int]:
        return self.ssh.forward(guest_port, guest_host)

    def _test(self, flag: str, path: str) -> bool:
        return self.run(f"test {flag} {shlex.quote(path)}", timeout=30).ok

    def file_exists(self, path: str) -> bool:
        return self._test("-e", path)

    def is_file(self, path: str) -> bool:
        return self._test("-f", path)

    def is_dir(self, path: str) -> bool:
        return self._test("-d", path)

    def command_exists(self, name: str) -> bool:
        return self.run(f"command -v {shlex.quote(name)}", timeout=30).ok

    def read_text(self, path: str, timeout: float = 60.0) -> str:
        return self.run(f"cat -- {shlex.quote(path)}", timeout=timeout, check=True).stdout

    def write_text(self, path: str, text: str, timeout: float = 60.0) -> None:
        self.run(f"cat > {shlex.quote(path)}", timeout=timeout, check=True, stdin=text.encode())

    def __repr__(self) -> str:
        return f"Machine({self.name}, image={self.image}, provider={self.provider.name})"
