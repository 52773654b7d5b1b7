"""The install conditions users hit (declared by the profile): a space in the path, root, locales."""

from __future__ import annotations

import pytest

from harness.checks.conditions import judge_conditions
from harness.plugins.inputs import chosen_conditions
from harness.suite.deployment import TwinResult
from harness.target import Target

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_install_conditions(target: Target, request: pytest.FixtureRequest, report) -> None:
    """Under every condition the profile declares, the release installs and its launcher runs."""
    if not target.profile.conditions:
        pytest.skip(f"the {target.profile.name} profile declares no [[conditions]]")
    if not chosen_conditions(request.config, target.profile):
        pytest.skip("no --condition given (a matrix dimension, like --image): the profile declares "
                    + ", ".join(c.name for c in target.profile.conditions) + "; --condition all runs them")
    install_twin: TwinResult = request.getfixturevalue("install_twin")  # only now: it boots a VM
    runs = install_twin.conditions
    if not runs:
        pytest.skip(f"blocked: the first install in the second VM failed (exit {install_twin.installed.installer.exit_code})")
    for run in runs:
        text = f"$ {run.installer.command}\n{run.installer.output}\n[exit {run.installer.exit_code}]"
        if run.check is not None:
            text += f"\n\n$ {run.check.command}\n{run.check.output}\n[exit {run.check.exit_code}]"
        report.attach_text(text, f"install condition {run.spec.name}")
    judge_conditions(runs)
