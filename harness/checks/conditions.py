"""The install conditions a profile declares, judged: under each one the release installs and its
launcher runs. The installs themselves are :mod:`harness.install.conditions`."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checks.shared import expect_none
from harness.install.conditions import ConditionRun


def problems(run: ConditionRun) -> list[str]:
    """What went wrong under one condition, headlined by the installer's first real error."""
    where = f"{run.spec.name} (HOME={run.home!r}, user {run.user}, env {dict(run.spec.env)})"
    if not run.installer.ok:
        # The headline names the step and the first real error; the installer's last lines follow.
        return [f"{where}: {run.installer.failure().headline()}\n{run.installer.tail(4)}"]
    if run.check is not None and not run.check.ok:
        failed = f"`{run.check.command}` exited with {run.check.exit_code}: {run.check.tail(4)}"
        return [f"{where}: installed, but {failed}"]
    return []


def judge_conditions(runs: Sequence[ConditionRun]) -> None:
    """Raises AssertionError naming every condition the release does not install under."""
    found = [problems(run) for run in runs]
    expect_none([p for each in found for p in each],
                f"the release does not install under {sum(bool(each) for each in found)} of the "
                f"{len(runs)} declared install conditions")
