"""Repository-level conftest: the harness plugin itself is loaded through its entry point.

Tests marked ``ondemand`` are the heavy end-to-end sets that CI leaves out to stay within its
time budget; they run with ``HARNESS_ONDEMAND=1`` (or when selected explicitly with ``-m ondemand``).
"""

from __future__ import annotations

import os

import pytest

# The tart/Orchard stand-ins' fixtures: an opt-in plugin, never loaded by portability runs. And the
# harness's own fixtures (vm, vm_environment, report, ...) in every session of its own tests, not
# only in portability runs.
pytest_plugins = ["harness.testing", "harness.plugins"]

ONDEMAND_ENV = "HARNESS_ONDEMAND"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(ONDEMAND_ENV) or "ondemand" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason=f"heavy on-demand set: run with {ONDEMAND_ENV}=1")
    for item in items:
        if item.get_closest_marker("ondemand") is not None:
            item.add_marker(skip)
