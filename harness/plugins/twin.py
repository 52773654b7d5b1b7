"""The second fresh VM of a target: the same release installed again (then reinstalled, served,
installed under the chosen conditions, and uninstalled). It runs beside the primary VM when a VM
slot is free for it as the primary one is set up, else on its own before the primary VM boots."""

from __future__ import annotations

import pytest

from harness.host.sizing import GuestSize
from harness.install.first import Installed
from harness.plugins.inputs import chosen_conditions
from harness.plugins.matrix import safe_name
from harness.plugins.sizing import sized_for
from harness.plugins.vm import VMEnvironment, interrupted, machine_maker
from harness.report.recorder import Reporter
from harness.suite.deployment import TwinResult, run_twin
from harness.suite.overlap import BackgroundTwin, FinishedTwin, TwinWork
from harness.target import Target

_TWINS = pytest.StashKey[dict[str, BackgroundTwin | FinishedTwin]]()


def twins(config: pytest.Config) -> dict[str, BackgroundTwin | FinishedTwin]:
    """Each target's second VM, by target name, once its work has started."""
    return config.stash.setdefault(_TWINS, {})


def _twin_work(request: pytest.FixtureRequest, target: Target, report: Reporter, size: GuestSize) -> TwinWork:
    evidence = report.layout.evidence / safe_name(target.name) / "twin"
    conditions = chosen_conditions(request.config, target.profile)
    return lambda make, timer, on_installed: run_twin(make, target, timer, lambda: interrupted(request), evidence,
                                                      conditions, on_installed, size)


@pytest.fixture(scope="session")
def second_vm(request: pytest.FixtureRequest, target: Target, report: Reporter) -> BackgroundTwin | FinishedTwin:
    """The second fresh VM's work: already running beside the first VM when the first VM's
    set-up found a VM slot for it, else done now, before the first VM boots."""
    started = twins(request.config)
    if target.name not in started:
        work = _twin_work(request, target, report, sized_for(request, target, 1))
        started[target.name] = FinishedTwin(work(machine_maker(request), report, lambda installed: None))
    return started[target.name]


# Function-scoped on purpose: pytest sets session fixtures up before function ones, so the first
# VM's set-up (which starts the second VM beside it) comes before anything waits for the second VM.
@pytest.fixture
def install_twin(second_vm: BackgroundTwin | FinishedTwin) -> TwinResult:
    """The same release installed in a second fresh VM (then reinstalled, served, installed under
    the chosen conditions, and uninstalled)."""
    return second_vm.result()


@pytest.fixture
def twin_installed(second_vm: BackgroundTwin | FinishedTwin) -> Installed:
    """The second VM's first install alone: a check that compares installs waits for no more."""
    return second_vm.installed()


def start_twin_beside(request: pytest.FixtureRequest, target: Target, report: Reporter) -> GuestSize | None:
    """Start the twin in the background when a VM slot is free for it right now: the size both
    VMs then get, or None (the twin runs first, alone)."""
    environment: VMEnvironment = request.getfixturevalue("vm_environment")
    if environment.max_vms < 2:  # --max-vms 1: one VM at a time, the twin first
        return None
    slot = environment.spare_slot(target.image)
    if slot is None:
        return None
    size = sized_for(request, target, 2)
    background = BackgroundTwin.start(target.name, slot, machine_maker(request), environment.journal,
                                      _twin_work(request, target, report, size))
    twins(request.config)[target.name] = background
    request.addfinalizer(background.cancel)
    return size
