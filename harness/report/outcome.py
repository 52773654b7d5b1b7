"""One place decides what a test's outcome means: passed, failed, broken or skipped.

*failed* means the release under test is at fault (an assertion about the product, a
``ProductDefect``); *broken* means the harness could not judge it (``InfrastructureError`` and its
subclasses, or any unexpected exception: a bug in the harness or the test). allure-pytest on its
own calls every exception that is not an ``AssertionError`` broken, which would file a
``ProductDefect`` under the infrastructure's column; the report plugin therefore takes allure's,
JUnit's and the journal's status from :func:`classify_exception` and :func:`combine`.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from harness.errors import InfrastructureError, ProductDefect
from harness.journal import Outcome

MESSAGE_LIMIT = 4000
_SEVERITY: dict[Outcome, int] = {"passed": 0, "skipped": 1, "failed": 2, "broken": 3}


def classify_exception(exc: BaseException | None) -> Outcome:
    if exc is None:
        return "passed"
    if isinstance(exc, pytest.skip.Exception):
        return "skipped"
    if isinstance(exc, InfrastructureError):
        return "broken"
    if isinstance(exc, (AssertionError, ProductDefect, pytest.fail.Exception)):
        return "failed"
    return "broken"


def classify_phase(
    report: pytest.TestReport, excinfo: pytest.ExceptionInfo[BaseException] | None
) -> Outcome:
    """The outcome of one phase (setup, call or teardown) of one test."""
    if hasattr(report, "wasxfail"):
        # An expected failure is not a verdict on the release; a strict XPASS is a real failure.
        return "skipped" if report.skipped else ("passed" if report.passed else "failed")
    if report.skipped:
        return "skipped"
    if report.passed:
        return "passed"
    return classify_exception(excinfo.value) if excinfo is not None else "failed"


def skip_reason(report: pytest.TestReport) -> str:
    """Why a phase was skipped (or an expected failure happened): what a reader of a skip needs."""
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return ""


def combine(phases: Iterable[tuple[str, Outcome]]) -> Outcome:
    """A test's outcome from its phases: setup decides first, then call; teardown only spoils a pass."""
    result: Outcome = "passed"
    for when, outcome in phases:
        if when == "teardown":
            if result == "passed" and outcome in ("failed", "broken"):
                result = outcome
        elif result == "passed":
            result = outcome
    return result


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    """The most serious of several outcomes for one check (broken > failed > skipped > passed)."""
    return max(outcomes, key=lambda o: _SEVERITY[o], default="skipped")


def failure_message(excinfo: pytest.ExceptionInfo[BaseException] | None, report: pytest.TestReport | None = None) -> str:
    """What broke, in the words of the exception (HarnessError's str carries its hint)."""
    if excinfo is not None:
        text = str(excinfo.value).strip() or excinfo.exconly().strip()
        name = type(excinfo.value).__name__
        message = f"{name}: {text}" if text else name
    elif report is not None and getattr(report, "longrepr", None) is not None:
        message = (
            str(report.longrepr).strip().splitlines()[-1] if str(report.longrepr).strip() else ""
        )
    else:
        message = ""
    return message[:MESSAGE_LIMIT]
