"""Hook specifications the harness adds to pytest, all in one place (pluggy style).

Other plugins (a product's own conftest, a CI integration) implement these to observe or extend a
run without patching the harness.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=False)
def pytest_harness_phase_started(name: str, target: str) -> None:
    """Called when a timed phase of the suite (boot, copy, install, serve, ...) begins on ``target``."""


@pytest.hookspec(firstresult=False)
def pytest_harness_phase_finished(phase: Any) -> None:
    """Called after every timed phase (boot, copy, install, serve, complete, teardown).

    ``phase`` is a :class:`harness.journal.PhaseRecord`.
    """


@pytest.hookspec(firstresult=False)
def pytest_harness_vm_ready(vm: Any) -> None:
    """Called when a VM answers SSH; ``vm`` is the live VM handle."""
