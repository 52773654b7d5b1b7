"""A release deployed in a clean VM: the value the portability checks share.

    boot (traffic captured) -> route for visible egress -> probe -> copy -> install
        -> [server started on demand] -> ... checks ... -> logs collected -> VM gone

``open_deployment`` does all of it as one context manager and records every phase (boot, copy,
install, serve, complete, teardown, total) for the reports. ``run_twin`` deploys the same release
in a second fresh VM, for the checks that need a second opinion (reproducible manifest) or that
destroy the install (uninstall). Where the host has a VM slot free for it, the twin runs beside
the primary VM (``harness.suite.overlap``); otherwise it finishes before the primary one boots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from harness.completions import Completion, CompletionClient
from harness.egress import make_attempts_visible
from harness.errors import HarnessError, InfrastructureError
from harness.host.sizing import GuestSize
from harness.install import footprint
from harness.install.again import Reinstall, install_again
from harness.install.conditions import ConditionRun, install_under
from harness.install.facts import probe_guest
from harness.install.first import Installed, install_release
from harness.install.uninstall import Uninstalled, uninstall
from harness.install.upgrade import Upgrade, upgrade
from harness.journal import Journal, PhaseRecord
from harness.profile import ConditionSpec
from harness.release import Release
from harness.server import Server, ServerDied, ServerFailed
from harness.target import Target
from harness.vm.machine import Machine
from harness.vm.provider import VMOptions


class PhaseTimer(Protocol):
    """What times the steps of a VM's work (the report, or a journal-only timer off the main thread)."""

    def phase(self, name: str, target: str | None = None) -> AbstractContextManager[None]: ...


class Reporter(PhaseTimer, Protocol):
    """The slice of ``harness.report.recorder.Reporter`` the suite uses."""

    def attach_text(self, text: str, name: str, target: str | None = None, suffix: str = ".txt") -> str: ...

    def attach_file(self, path: Path | str, name: str | None = None, target: str | None = None) -> str: ...

    def footprint(self, target: str, layers: Mapping[str, int], source: str = "installed") -> None: ...


MachineMaker = Callable[[str, VMOptions], Machine]


def sized(options: VMOptions, size: GuestSize | None) -> VMOptions:
    return options if size is None else replace(options, cpus=size.cpus, memory_mb=size.memory_mb)


def timer(report: PhaseTimer, target: Target, prefix: str = "") -> Callable[[str], AbstractContextManager[None]]:
    return lambda phase: report.phase(f"{prefix}{phase}", target=target.name)


@contextmanager
def booted(make_machine: MachineMaker, target: Target, options: VMOptions, report: PhaseTimer,
           prefix: str = "", failed: Callable[[], bool] = lambda: False,
           interrupted: Callable[[], bool] = lambda: False) -> Iterator[Machine]:
    machine = make_machine(target.image, options)
    with report.phase(f"{prefix}boot", target=target.name):
        machine.start()
    error: BaseException | None = None
    try:
        yield machine
    except BaseException as exc:
        error = exc
        raise
    finally:
        with report.phase(f"{prefix}teardown", target=target.name):
            machine.close(failed=failed() or (error is not None and not isinstance(error, KeyboardInterrupt)),
                          interrupted=interrupted() or isinstance(error, KeyboardInterrupt))


@dataclass
class Deployment:
    """The primary VM of one target with the release installed; the server starts on demand."""

    target: Target
    machine: Machine
    installed: Installed
    pcap: Path | None
    watch_from: float  # host clock: egress attempts from here on count
    report: Reporter
    logs_dir: Path
    network_note: str = ""
    server_error: ServerFailed | ServerDied | None = None
    first_completion: Completion | None = None
    _server: Server | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.target.name

    def server(self) -> Server:
        """The started server, (re)started when it is not running; raises ServerFailed (once,
        then from cache) if it cannot start, and ServerDied when it stopped answering on its own:
        the check that finds it so fails, and the checks after it get the restarted server."""
        if self.server_error is not None:
            raise self.server_error
        if self._server is None:
            self._server = Server(self.machine, self.installed.bound, self.logs_dir)
        why = self._server.unhealthy_because()
        if not why:
            return self._server
        # Silence over a fallen SSH link says nothing about the server: the restart below then
        # fails as the harness's own trouble.
        died = self._server.running and self._link_alive()
        logs = self._server.log_tails() if died else ""
        try:
            with self.report.phase("serve", target=self.name):
                self._server.start()
        except ServerFailed as exc:
            failure: ServerFailed | ServerDied = exc
            if died:
                failure = ServerDied(f"the server died after it had started healthy ({why}), and a restart "
                                     f"failed: {exc.message}", detail=logs)
            elif self._server.last_ready_s is not None:  # it had started healthy: server_starts passed
                failure = ServerDied(f"the server did not start again after a check stopped it: {exc.message}",
                                     hint=exc.hint, detail=exc.detail)
            self.server_error = failure
            raise failure from None
        if died:
            raise ServerDied(f"the server died after it had started healthy ({why}); it was restarted for the "
                             "checks after this one", hint="see the server log tails below", detail=logs)
        return self._server

    def client(self) -> CompletionClient:
        return self.completions_from(self.server())

    def completions_from(self, server: Server) -> CompletionClient:
        """A client of ``server`` that tells a lost SSH link (broken) from a server that failed."""
        return CompletionClient(server.base_url, self.target.profile.api, link_alive=self._link_alive)

    def _link_alive(self) -> bool:
        try:
            return self.machine.ssh.alive
        except InfrastructureError:  # the VM is gone or closed
            return False

    def warm_up(self, client: CompletionClient) -> Completion:
        """The first completion after the server came up, timed as the ``complete`` phase."""
        if self.first_completion is None:
            profile = self.target.profile
            prompt = profile.prompts[0]
            with self.report.phase("complete", target=self.name):
                self.first_completion = client.complete(
                    prompt.messages, max_tokens=prompt.max_tokens or profile.determinism.max_tokens,
                    temperature=profile.determinism.temperature)
        return self.first_completion

    def close(self) -> None:
        """Stop the server and bring its logs home into the evidence folder (best effort: the VM
        goes next anyway). Not attached to a test: at session end the running test is unrelated;
        the server checks attach log tails themselves."""
        if self._server is None:
            return
        try:
            self._server.close()
            self._server.collect_logs()
        except HarnessError as exc:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            (self.logs_dir / "collection-failed.txt").write_text(str(exc), encoding="utf-8")


def _record_total(journal: Journal, target: Target, started: float, clock: float, ok: bool) -> None:
    journal.write(PhaseRecord(target=target.name, phase="total", duration_s=round(time.perf_counter() - clock, 3),
                              ok=ok, started_at=started))


@contextmanager
def open_deployment(make_machine: MachineMaker, target: Target, report: Reporter, journal: Journal,
                    evidence_dir: Path, failed: Callable[[], bool], interrupted: Callable[[], bool],
                    size: GuestSize | None = None) -> Iterator[Deployment]:
    started, clock = time.time(), time.perf_counter()
    evidence_dir.mkdir(parents=True, exist_ok=True)
    pcap = evidence_dir / "traffic.pcap"
    pcap.unlink(missing_ok=True)
    options = sized(VMOptions(capture_traffic=True, pcap_path=pcap), size)
    ok = False
    try:
        with booted(make_machine, target, options, report, failed=failed, interrupted=interrupted) as machine:
            note = make_attempts_visible(machine)
            facts = probe_guest(machine)
            watch_from = time.time()
            installed = install_release(machine, target.profile, target.release, facts, timer(report, target))
            if installed.installer.ok:
                report.footprint(target.name, footprint.measure(
                    machine, target.profile, installed.context, installed.roots))
            # A provider that cannot record traffic (tart: Softnet blocks it instead) has no capture.
            provider = machine.provider
            captured = provider.traffic_pcap(machine.name) if provider.capabilities.traffic_capture else None
            deployment = Deployment(target, machine, installed, captured, watch_from, report,
                                    evidence_dir / "server-logs", network_note=note)
            try:
                yield deployment
            finally:
                deployment.close()
        ok = True
    finally:
        _record_total(journal, target, started, clock, ok)


@dataclass(frozen=True)
class TwinResult:
    """The second VM's install, reinstall, install conditions (and uninstall), finished and gone
    before the checks read them."""

    installed: Installed
    served: str  # what happened when the server was started and stopped before uninstalling
    uninstall: Uninstalled | None
    vm_name: str
    reinstall: Reinstall | None = None  # None when the first install failed
    conditions: tuple[ConditionRun, ...] = ()


def run_twin(make_machine: MachineMaker, target: Target, report: PhaseTimer, interrupted: Callable[[], bool],
             logs_dir: Path, conditions: Sequence[ConditionSpec] = (),
             on_installed: Callable[[Installed], None] = lambda installed: None,
             size: GuestSize | None = None) -> TwinResult:
    """install -> reinstall over it -> serve once (the reinstalled tree must work) -> install
    conditions (each in a home of its own) -> uninstall. ``on_installed`` hears of the first
    install as soon as it is done (the manifest comparison needs nothing more)."""
    profile = target.profile
    phase = timer(report, target, "twin_")
    with booted(make_machine, target, sized(VMOptions(), size), report, prefix="twin_",
                interrupted=interrupted) as machine:
        facts = probe_guest(machine)
        installed = install_release(machine, profile, target.release, facts, phase)
        on_installed(installed)
        served, uninstalled, again = "not attempted: the install failed", None, None
        tried: tuple[ConditionRun, ...] = ()
        if installed.installer.ok:
            with phase("reinstall"):
                again = install_again(machine, installed)
            served = again.served
            if again.installer.ok:
                served, server_ok = _serve_once(machine, target, installed, logs_dir)
                again = replace(again, served=served, server_ok=server_ok)
            if conditions:
                with phase("conditions"):
                    tried = tuple(install_under(machine, profile, target.release, facts, spec) for spec in conditions)
        if installed.installer.ok and profile.uninstall is not None:
            if again is None or not again.server_ok:
                served, _ = _serve_once(machine, target, installed, logs_dir)
            uninstalled = uninstall(machine, installed, phase)
        return TwinResult(installed, served, uninstalled, str(machine.name), again, tried)


def _serve_once(machine: Machine, target: Target, installed: Installed, logs_dir: Path) -> tuple[str, bool]:
    """Start and stop the server once, so the uninstall must also clear what serving leaves."""
    server = Server(machine, installed.bound, logs_dir)
    try:
        ready = server.start()
        stop = server.stop()
        return (f"served (ready in {ready:.1f} s) and stopped "
                f"({'clean' if stop.clean else '; '.join(stop.problems())})"), True
    except HarnessError as exc:
        return f"the server did not start in the second VM: {exc.message}", False
    finally:
        server.close()


@dataclass(frozen=True)
class UpgradeResult:
    """A third VM: the older release installed with its own installer, then this one over it."""

    upgrade: Upgrade
    vm_name: str


def run_upgrade(make_machine: MachineMaker, target: Target, previous: Release, report: PhaseTimer,
                interrupted: Callable[[], bool]) -> UpgradeResult:
    with booted(make_machine, target, VMOptions(), report, prefix="upgrade_", interrupted=interrupted) as machine:
        facts = probe_guest(machine)
        done = upgrade(machine, target.profile, target.release, previous, facts, timer(report, target, "upgrade_"))
        return UpgradeResult(done, str(machine.name))
