"""Fixtures of the reference release's tests: one build per session, installs into throw-away HOMEs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from release_support import (
    RELEASE_DIR,
    BuiltReleases,
    ReleaseHome,
    ServerClient,
    build_all,
    free_port,
    make_clean_path,
)


@pytest.fixture(scope="session")
def built() -> BuiltReleases:
    """The good release and every variant, built (or found up to date) in examples/reference_release/dist."""
    return build_all(RELEASE_DIR / "dist")


@pytest.fixture(scope="session")
def clean_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clean_path(tmp_path_factory.mktemp("clean-path") / "bin")


@pytest.fixture
def fresh_home(tmp_path: Path, clean_path: Path) -> ReleaseHome:
    home = tmp_path / "home"
    home.mkdir()
    return ReleaseHome(home, clean_path)


@pytest.fixture(scope="session")
def installed(built: BuiltReleases, clean_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ReleaseHome:
    """The good release installed by its own install.sh, default flags, into a fresh HOME."""
    home = ReleaseHome(tmp_path_factory.mktemp("installed") / "home", clean_path)
    home.home.mkdir()
    result = home.install(built.installer(), "--tarball", str(built.tarball()))
    assert result.returncode == 0, f"install.sh failed:\n{result.stdout}\n{result.stderr}"
    return ReleaseHome(home.home, clean_path, install_output=result.stdout)


@pytest.fixture(scope="module")
def server(installed: ReleaseHome) -> Iterator[ServerClient]:
    """A server started by `refapp serve`; one per module, stopped at the module's end (the launcher
    runs one server per config dir, so launcher tests live in a module without this fixture)."""
    with installed.serving(free_port()) as client:
        yield client
