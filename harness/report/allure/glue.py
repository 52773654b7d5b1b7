"""What the harness adds to allure-pytest's results while a test runs.

- labels (parentSuite = image, suite = check area, release version, profile) and the volatile
  values (VM name, IP, port) as *excluded* parameters, so history ids stay the same across runs;
- the harness's outcome: the report plugin hands it over as a transient label, and
  :class:`OutcomeFixer` (an ``allure_commons`` plugin, run before the file writer) turns it into
  the result's status and tags the message with the area the categories match on;
- a result for a test whose xdist worker died, which allure-pytest could never write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import allure_commons
from allure_commons.model2 import Label, Status, StatusDetails, TestResult
from allure_commons.types import LabelType
from allure_commons.utils import md5, uuid4

from harness.journal import Outcome
from harness.report.categories import tagged
from harness.report.identity import CheckIdentity

TRANSIENT_LABEL = "harness.outcome"
_STATUS: dict[str, str] = {
    "passed": Status.PASSED,
    "failed": Status.FAILED,
    "broken": Status.BROKEN,
    "skipped": Status.SKIPPED,
}


def add_test_labels(
    identity: CheckIdentity,
    labels: Mapping[str, str],
    volatile: Mapping[str, str],
    shown: Mapping[str, str] | None = None,
) -> None:
    """Call while the test is open in allure (before its teardown ends).

    ``shown`` replaces the displayed value of existing parameters (a target object's repr is
    unreadable); allure keeps hashing the original value, so history ids do not move.
    """
    hook = allure_commons.plugin_manager.hook
    hook.add_label(label_type=LabelType.PARENT_SUITE, labels=[identity.target])
    hook.add_label(label_type=LabelType.SUITE, labels=[identity.area])
    hook.add_label(label_type="target", labels=[identity.target])
    hook.add_label(label_type="check", labels=[identity.check])
    for name, value in labels.items():
        hook.add_label(label_type=name, labels=[value])
    for name, value in volatile.items():
        hook.add_parameter(name=name, value=value, excluded=True, mode=None)
    for name, value in (shown or {}).items():
        hook.add_parameter(name=name, value=value, excluded=False, mode=None)


def hand_over_outcome(outcome: Outcome, area: str, repro: str = "") -> None:
    """``repro``: the command that recreates a failed check's VM, shown in its description."""
    allure_commons.plugin_manager.hook.add_label(
        label_type=TRANSIENT_LABEL,
        labels=[json.dumps({"outcome": outcome, "area": area, "repro": repro})],
    )


class OutcomeFixer:
    """Sets each result's status from the harness's outcome before allure's file writer runs."""

    @allure_commons.hookimpl(tryfirst=True)
    def report_result(self, result: TestResult) -> None:
        handed = [label for label in result.labels if label.name == TRANSIENT_LABEL]
        if not handed:
            return
        result.labels = [label for label in result.labels if label.name != TRANSIENT_LABEL]
        payload = json.loads(handed[-1].value)
        result.status = _STATUS[payload["outcome"]]
        if result.status in (Status.FAILED, Status.BROKEN):
            details = result.statusDetails or StatusDetails(message="")
            details.message = tagged(payload["area"], details.message or "")
            result.statusDetails = details
            if payload.get("repro"):
                shown = f"Reproduce in a kept VM: `{payload['repro']}`"
                result.description = f"{result.description}\n\n{shown}" if result.description else shown


def report_lost_test(nodeid: str, identity: CheckIdentity, message: str) -> None:
    """Write a broken result for a test whose worker crashed before allure could write one."""
    now = int(time.time() * 1000)
    name = nodeid.rsplit("::", 1)[-1]
    result = TestResult(
        uuid=uuid4(),
        name=name,
        fullName=nodeid,
        historyId=md5(nodeid),
        testCaseId=md5(nodeid),
        start=now,
        stop=now,
        status=Status.BROKEN,
        statusDetails=StatusDetails(message=tagged(identity.area, message)),
        labels=[
            Label(LabelType.PARENT_SUITE, identity.target),
            Label(LabelType.SUITE, identity.area),
            Label(LabelType.FRAMEWORK, "pytest"),
        ],
    )
    allure_commons.plugin_manager.hook.report_result(result=result)
