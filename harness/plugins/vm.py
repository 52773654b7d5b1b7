"""The VMs' pytest plugin: the ``vm`` and ``vm_factory`` fixtures, the reaper at session
start, and the list of kept VMs at the end (its options are :class:`harness.run_options.RunOptions`).

    def test_something(vm):            # a fresh, clean VM per test (one per --image given)
        assert vm.run("uname -s").stdout == "Linux\\n"

    def test_two(vm_factory):          # several VMs; all destroyed at teardown
        a, b = vm_factory(), vm_factory("linux-debian12")

Fixtures at other scopes build their VMs from the session-scoped ``vm_environment``:
``with vm_environment.machine(image) as vm: ...``.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import pytest

from harness.config import HostPaths
from harness.errors import HarnessError
from harness.host.interrupts import SigtermAsInterrupt, interrupts_deferred
from harness.host.reaper import reap
from harness.host.run_label import LeaseBook, VMName
from harness.host.slots import Slot, SlotPool
from harness.journal import GenericRecord, Journal, PhaseRecord
from harness.plugins.failures import failures
from harness.plugins.report import reporter_for
from harness.run_options import DEFAULT_IMAGE, run_options
from harness.vm.machine import KeepPolicy, Machine, MachineSettings
from harness.vm.provider import Provider, VMOptions
from harness.vm.registry import available_providers, provider_for_image
from harness.vm.warm.plan import start_mode, start_mode_record_data
from harness.vm.watchdog import Watchdog

RUN_ID_LENGTH = 10

_RUN_ID = pytest.StashKey[str]()
_SIGTERM = pytest.StashKey[SigtermAsInterrupt]()


# -- run identity, signals, reaping -------------------------------------------------------------


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _run_id_from(text: str | None) -> str:
    cleaned = re.sub(r"[^0-9a-z]", "", (text or "").lower())[:RUN_ID_LENGTH]
    return cleaned or uuid.uuid4().hex[:RUN_ID_LENGTH]


def pytest_configure(config: pytest.Config) -> None:
    if _is_xdist_worker(config):
        run_id = _run_id_from(config.workerinput["testrunuid"])  # type: ignore[attr-defined]
    else:
        given = getattr(config.option, "testrunuid", None)
        run_id = _run_id_from(given)
        if given is None and config.pluginmanager.hasplugin("xdist"):
            # xdist hands this to every worker: controller and workers then share one run id.
            config.option.testrunuid = run_id
    config.stash[_RUN_ID] = run_id
    config.stash[_SIGTERM] = SigtermAsInterrupt().install()


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(_SIGTERM, None)
    if guard is not None:
        guard.restore()


def _reap_dead_owners(config: pytest.Config, when: str) -> None:
    """Remove VMs whose owner died (never a live run's, never a kept one); report what went."""
    paths = HostPaths.from_env()
    lines: list[str] = []
    try:
        reap(available_providers(paths), paths, say=lines.append)
    except (HarnessError, OSError) as exc:
        lines.append(f"reaper skipped: {exc}")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for line in lines:
            reporter.write_line(f"harness reaper ({when}): {line}")


def _controls_the_run(config: pytest.Config) -> bool:
    option = config.option
    return not (_is_xdist_worker(config) or option.help or option.collectonly)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove VMs of dead runs before starting new ones (the controller does it for all)."""
    if _controls_the_run(session.config):
        _reap_dead_owners(session.config, "session start")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """An xdist worker crashed: its VMs now have a dead owner; remove them at once."""
    if error is not None:
        _reap_dead_owners(node.config, "worker crashed")  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist has no global teardown: whatever a crashed worker left goes at the end too."""
    if _controls_the_run(session.config):
        _reap_dead_owners(session.config, "session end")


# -- the environment VMs are made in -----------------------------------------------------------


def _results_dir(config: pytest.Config) -> Path:
    """The run's results directory as the report plugin resolved it (VM logs go under vms/)."""
    return reporter_for(config).layout.root


@dataclass
class VMEnvironment:
    """Everything needed to make VMs in this pytest process (one per session)."""

    config: pytest.Config
    run_id: str
    images: list[str]
    keep: KeepPolicy
    max_vms: int
    boot_timeout_s: float
    slot_timeout_s: float
    paths: HostPaths
    results_dir: Path
    journal: Journal
    warm: bool = True  # --warm/--cold
    _providers: dict[str, Provider] = field(default_factory=dict)
    _pools: dict[str, SlotPool] = field(default_factory=dict)
    _watchdog: Watchdog | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watchdog(self) -> Watchdog:
        """This process's watchdog (started with the first VM): its VMs go if the process dies.
        Locked: the second VM's thread and the main thread may ask at the same moment."""
        with self._lock:
            if self._watchdog is None or not self._watchdog.alive:
                log = self.results_dir / "vms" / f"watchdog-{os.getpid()}.log"
                self._watchdog = Watchdog.spawn(self.paths, log)
            return self._watchdog

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None

    def provider(self, image: str) -> Provider:
        if image not in self._providers:
            self._providers[image] = provider_for_image(image, self.paths)
        return self._providers[image]

    def slots(self, provider: Provider) -> SlotPool:
        if provider.name not in self._pools:
            foreign = provider.foreign_running_count if provider.capabilities.foreign_vms else None
            self._pools[provider.name] = SlotPool(self.paths.slots, self.max_vms, foreign)
        return self._pools[provider.name]

    def machine(self, image: str | None = None, *, keep: KeepPolicy | None = None,
                say: Callable[[str], None] = print, options: VMOptions | None = None,
                slot: Slot | None = None) -> Machine:
        """A Machine (not started yet): use it as a context manager or call start()/close().
        ``options`` set the hardware and capture; warm or cold is the run's choice (--warm/--cold).
        ``slot``: one reserved with ``spare_slot``, which the machine then frees."""
        image = image or self.images[0]
        provider = self.provider(image)
        settings = MachineSettings(
            image=image, run_id=self.run_id, artifacts_root=self.results_dir / "vms",
            keep=keep or self.keep, boot_timeout_s=self.boot_timeout_s,
            slot_timeout_s=self.slot_timeout_s, options=replace(options or VMOptions(), warm=self.warm),
        )
        journal = self.journal
        hook = self.config.hook

        def phase_finished(record: PhaseRecord) -> None:
            hook.pytest_harness_phase_finished(phase=record)

        def vm_ready(machine: Machine) -> None:
            mode = start_mode(machine.provider, machine.name)
            journal.write(GenericRecord(kind="meta", target=machine.image,
                                        data=start_mode_record_data(mode, str(machine.name), machine.image)))
            hook.pytest_harness_vm_ready(vm=machine)

        return Machine(provider, settings, slots=self.slots(provider), paths=self.paths,
                       journal=self.journal, on_phase=phase_finished, on_ready=vm_ready, say=say,
                       watchdog=self.watchdog(), slot=slot)

    def spare_slot(self, image: str | None = None) -> Slot | None:
        """A VM slot free right now for ``image``'s provider, or None: never waits, so a VM
        started beside another one cannot deadlock parallel runs on the host's cap."""
        return self.slots(self.provider(image or self.images[0])).try_acquire(label="reserved")


class VMFactory:
    """Makes started VMs on demand; ``close_all`` removes every one of them (or keeps, per policy)."""

    def __init__(self, environment: VMEnvironment, default_image: str) -> None:
        self.environment = environment
        self.default_image = default_image
        self.machines: list[Machine] = []

    def __call__(self, image: str | None = None, *, keep: KeepPolicy | None = None,
                 options: VMOptions | None = None) -> Machine:
        machine = self.environment.machine(image or self.default_image, keep=keep,
                                           options=options)
        self.machines.append(machine)
        return machine.start()

    def close_all(self, failed: bool, interrupted: bool) -> None:
        errors: list[HarnessError] = []
        with interrupts_deferred():  # every VM goes, even if Ctrl-C is pressed again meanwhile
            for machine in reversed(self.machines):
                try:
                    machine.close(failed=failed, interrupted=interrupted)
                except HarnessError as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def harness_run_id(pytestconfig: pytest.Config) -> str:
    """This run's id, shared by the xdist controller and its workers; part of every VM's name."""
    return pytestconfig.stash[_RUN_ID]


@pytest.fixture(scope="session")
def vm_environment(pytestconfig: pytest.Config, harness_run_id: str) -> Iterator[VMEnvironment]:
    config = pytestconfig
    options = run_options(config)
    results = _results_dir(config)
    environment = VMEnvironment(
        config=config,
        run_id=harness_run_id,
        images=list(options.images),
        keep=options.keep_vm,
        max_vms=options.max_vms,
        boot_timeout_s=options.vm_boot_timeout,
        slot_timeout_s=options.vm_slot_timeout,
        paths=HostPaths.from_env(),
        results_dir=results,
        journal=Journal(results),
        warm=options.warm,
    )
    yield environment
    environment.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a VM runs once per ``--image``."""
    if "image" not in metafunc.fixturenames:
        return
    if any("image" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chose its images itself
    images = list(run_options(metafunc.config).images)
    metafunc.parametrize("image", images, indirect=True, ids=images)


@pytest.fixture
def image(request: pytest.FixtureRequest) -> str:
    """The image this test instance runs on (one of --image)."""
    param = getattr(request, "param", None)
    return str(param) if param else DEFAULT_IMAGE


@pytest.fixture
def vm_factory(
    request: pytest.FixtureRequest, vm_environment: VMEnvironment, image: str
) -> Iterator[VMFactory]:
    factory = VMFactory(vm_environment, image)
    yield factory
    factory.close_all(
        failed=failures(request.config).item_failed(request.node),
        # Ctrl-C/SIGTERM: pytest tears fixtures down with the session marked interrupted, and an
        # interrupted run keeps nothing, whatever --keep-vm says.
        interrupted=request.session.exitstatus == pytest.ExitCode.INTERRUPTED,
    )


@pytest.fixture
def vm(vm_factory: VMFactory) -> Machine:
    """A freshly booted, clean VM for this test alone; gone after the test (see --keep-vm)."""
    return vm_factory()


def interrupted(request: pytest.FixtureRequest) -> bool:
    """Ctrl-C, SIGTERM or a stop asked for (-x): a VM being torn down keeps nothing."""
    return request.session.exitstatus == pytest.ExitCode.INTERRUPTED or bool(request.session.shouldstop)


class MachineMaker(Protocol):
    """Makes a machine of the session (not started); given a reserved slot, it runs in that one."""

    def __call__(self, image: str, options: VMOptions, slot: Slot | None = None) -> Machine: ...


def machine_maker(request: pytest.FixtureRequest) -> MachineMaker:
    """The session's machine maker, for fixtures at any scope."""
    environment: VMEnvironment = request.getfixturevalue("vm_environment")

    def make(image: str, options: VMOptions, slot: Slot | None = None) -> Machine:
        return environment.machine(image, options=options, slot=slot)

    return make


# -- the end of the run --------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    if _is_xdist_worker(config) or _RUN_ID not in config.stash:
        return
    run_id = config.stash[_RUN_ID]
    kept = [
        lease for lease in LeaseBook(HostPaths.from_env().state / "leases").all()
        if lease.kept and (parsed := VMName.parse(lease.name)) and parsed.run_id == run_id
    ]
    if not kept:
        return
    terminalreporter.section("kept VMs")
    for lease in kept:
        terminalreporter.write_line(f"{lease.name} ({lease.image}); logs in {lease.artifacts}")
        if lease.ssh_command:
            terminalreporter.write_line(f"  log in:  {lease.ssh_command}")
        terminalreporter.write_line(f"  remove:  harness gc --name {lease.name}")

