"""Pytest plugin of the static-inspection area: the release is inspected once per session.

The release path (``--release``) and profile (``--profile``) options belong to the suite area
(harness.suite.fixtures); this plugin only reads them, with ``default=None`` so that it also
works when the suite area is not loaded. It adds ``--inspect-target``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.inspect.findings import Finding, Report
from harness.inspect.runner import inspect_release
from harness.inspect.targets import known_targets
from harness.journal import Journal
from harness.suite.reference import DEFAULT_PROFILE, default_release


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness-inspect", "static release inspection")
    group.addoption(
        "--inspect-target",
        default=None,
        help=f"target system for static checks: {', '.join(known_targets())} or a target JSON "
        "(default: inferred from the release's binaries)",
    )


def _journal(request: pytest.FixtureRequest) -> Journal | None:
    """The run's journal when another area provides one (fixture ``harness_journal``)."""
    try:
        journal = request.getfixturevalue("harness_journal")
    except pytest.FixtureLookupError:
        return None
    return journal if isinstance(journal, Journal) else None


@pytest.fixture(scope="session")
def release_inspection(request: pytest.FixtureRequest) -> Report:
    """The static inspection report of ``--release`` (skips the test when no release is given)."""
    release = request.config.getoption("release", default=None)
    if isinstance(release, (list, tuple)):  # --release is repeatable (a matrix)
        if len(release) > 1:
            pytest.skip("static inspection takes one release: run it once per --release")
        release = release[0] if release else None
    profile = request.config.getoption("profile", default=None)
    if not release:
        # The same default subject as the VM checks: the built reference release.
        release = default_release(request.config.rootpath)
        profile = profile or DEFAULT_PROFILE
    if not release:
        pytest.skip("static inspection needs a release: pass --release PATH/TO/release.tar.gz "
                    "or build the reference release (python examples/reference_release/build.py)")
    target = request.config.getoption("inspect_target", default=None)
    return inspect_release(Path(str(release)), target=target, profile=str(profile) if profile else None,
                           journal=_journal(request))


def describe_failures(area: str, report: Report, findings: list[Finding]) -> str:
    """A failure message a release engineer can act on without opening another file."""
    lines = [f"{len(findings)} error-level {area} finding(s) in {report.release} for target {report.target}:"]
    for finding in findings:
        lines.append(f"  - {finding.check}: {finding.path}: {finding.message}")
        if finding.hint:
            lines.append(f"      fix: {finding.hint}")
    return "\n".join(lines)
