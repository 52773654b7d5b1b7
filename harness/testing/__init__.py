"""Test doubles for what cannot run on this host, as an opt-in pytest plugin.

tart and Orchard need Apple hardware, so the harness's own tests drive their providers against
stand-ins: :mod:`harness.testing.tart_standin` (tart's command line, backed by QEMU guests or a
loopback SSH server) and :mod:`harness.testing.orchard_standin` (Orchard's REST and WebSocket API).
They are NOT part of a portability run: the production plugin never loads this module. Enable it
like pytest's ``pytester``, with ``-p harness.testing`` or ``pytest_plugins = ["harness.testing"]``
in a conftest, to get the fixtures below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.testing.orchard_standin import OrchardStandin
from harness.testing.tart_standin.private_home import StandinHome

__all__ = ["MakeTartStandin", "OrchardStandin", "StandinHome", "make_tart_standin", "orchard_standin"]

MakeTartStandin = Callable[..., StandinHome]


@pytest.fixture
def make_tart_standin(tmp_path: Path) -> Iterator[MakeTartStandin]:
    """A factory of private tart stand-in homes (``backend``: idle, loopback or qemu); each one's
    ``run`` processes are stopped when the test ends."""
    made: list[StandinHome] = []

    def make(backend: str = "idle", **settings: object) -> StandinHome:
        home = StandinHome(tmp_path / f"standin-{len(made)}", backend=backend, **settings)  # type: ignore[arg-type]
        made.append(home)
        return home

    yield make
    for home in made:
        home.close()


@pytest.fixture
def orchard_standin() -> Iterator[OrchardStandin]:
    """An Orchard API stand-in on 127.0.0.1, stopped when the test ends."""
    with OrchardStandin() as server:
        yield server
