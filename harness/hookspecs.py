"""Hook specifications the harness adds to pytest, all in one place (pluggy style).

Other plugins (a product's own conftest, a CI integration) implement these to observe or extend a
run without patching the harness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # types only: every pytest session loads this module, and it stays light
    from harness.journal import PhaseRecord
    from harness.vm.machine import Machine


@pytest.hookspec(firstresult=False)
def pytest_harness_phase_started(name: str, target: str) -> None:
    """Called when a timed phase of the suite (boot, copy, install, serve, ...) begins on ``target``."""


@pytest.hookspec(firstresult=False)
def pytest_harness_phase_finished(phase: PhaseRecord) -> None:
    """Called after every timed phase (boot, copy, install, serve, complete, teardown)."""


@pytest.hookspec(firstresult=False)
def pytest_harness_vm_ready(vm: Machine) -> None:
    """Called when a VM answers SSH; ``vm`` is the live VM handle."""
