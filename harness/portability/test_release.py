"""The tarball as published: its checksum file must vouch for it (no VM needed)."""

from __future__ import annotations

import pytest

from harness.target import Target

pytestmark = [pytest.mark.portability]


def test_release_checksum(target: Target) -> None:
    """checksums.txt, when published beside the tarball, lists it with its real sha256."""
    verdict = target.release.checksum
    if verdict.file is None:
        pytest.skip(f"no {target.profile.release.checksums} beside {target.release.filename}: nothing to verify")
    assert not verdict.problem, verdict.problem
