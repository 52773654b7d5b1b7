"""Static portability checks of the release under test: no VM, one test per check area.

Run as ``pytest --pyargs harness.portability.test_static --release PATH [--profile NAME]
[--inspect-target debian-12|macos-14]``.
"""

from __future__ import annotations

import pytest

from harness.inspect.findings import AREAS, Report, describe_failures

pytestmark = pytest.mark.portability


@pytest.mark.parametrize("area", AREAS)
def test_static_area(release_inspection: Report, area: str) -> None:
    errors = [f for f in release_inspection.in_area(area) if f.severity == "error"]
    assert not errors, describe_failures(area, release_inspection, errors)
