"""The static inspection's pytest plugin: the release is inspected once per session.

Its options (``--release``, ``--profile``, ``--inspect-target``) are those of every portability run,
:class:`harness.run_options.RunOptions`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.inspect.findings import Report
from harness.inspect.runner import inspect_release
from harness.journal import Journal
from harness.plugins.inputs import session_profile
from harness.run_options import run_options
from harness.suite.reference import default_release


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
    options = run_options(request.config)
    if len(options.release) > 1:  # --release is repeatable (a matrix)
        pytest.skip("static inspection takes one release: run it once per --release")
    release: str | Path | None = options.release[0] if options.release else None
    # Layout expectations come from the profile when one is named (the reference profile goes
    # with the default release): the session's, read once.
    named = bool(options.profile) or not release
    if not release:
        # The same default subject as the VM checks: the built reference release.
        release = default_release(request.config.rootpath)
    if not release:
        pytest.skip("static inspection needs a release: pass --release PATH/TO/release.tar.gz "
                    "or build the reference release (python examples/reference_release/build.py)")
    target = options.inspect_target
    return inspect_release(Path(str(release)), target=target,
                           profile=session_profile(request.config) if named else None, journal=_journal(request))
