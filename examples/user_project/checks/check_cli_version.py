"""A check only this product needs: the installed CLI reports the version its tarball is named for."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.install.first import Installed

pytestmark = pytest.mark.product


def test_cli_reports_the_release_version(cli: Callable[..., str], installed: Installed) -> None:
    expected = installed.release.name.version
    said = cli("version")
    assert said == f"refapp {expected}", f"the installed CLI says {said!r}, the tarball is version {expected}"
