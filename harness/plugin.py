"""The pytest plugin, registered through the ``pytest11`` entry point.

This module only wires areas together: each area (VMs, the portability suite, static inspection,
reports) is a plugin module of its own with its options, fixtures and hooks, registered here early
enough that its ``pytest_addoption`` runs before the command line is parsed.
"""

from __future__ import annotations

import importlib

import pytest

AREA_PLUGINS: tuple[str, ...] = (
    "harness.suite.pipeline",
    "harness.vm.fixtures",
    "harness.suite.fixtures",
    "harness.suite.summary",
    "harness.inspect.fixtures",
    "harness.report.plugin",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from harness import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    for name in AREA_PLUGINS:
        if pluginmanager.get_plugin(name) is None:
            pluginmanager.register(importlib.import_module(name), name=name)
