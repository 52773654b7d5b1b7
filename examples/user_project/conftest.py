"""The product's own fixtures, built on the harness's (``installed``, ``deployment``, ``server``,
``client``, ``vm``...): they come from the harness's pytest plugin, nothing to import or register."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest

from harness.install.first import Installed
from harness.suite.deployment import Deployment


@pytest.fixture
def cli(installed: Installed, deployment: Deployment) -> Callable[..., str]:
    """Run the installed ``refapp`` CLI in the target's VM; returns its output."""
    path = f"{installed.context['bin']}/refapp"

    def run(*args: str) -> str:
        result = deployment.machine.run(" ".join(shlex.quote(a) for a in (path, *args)), timeout=60)
        assert result.ok, f"`refapp {' '.join(args)}` exited with {result.exit_code}: {result.stderr[-500:]}"
        return result.stdout.strip()

    return run
