"""The deployment's server on demand: restarted silently after a check stopped it, named as dead
when it stopped answering on its own, never blamed when the SSH link under it fell."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.errors import InfrastructureError
from harness.server import ServerDied, ServerFailed
from harness.suite.deployment import Deployment


class FakeServer:
    """What Deployment.server() asks of a Server: health, start, and whether it was left running."""

    def __init__(self, restart_fails: bool = False) -> None:
        self.running = False
        self.up = False
        self.starts = 0
        self.restart_fails = restart_fails
        self.last_ready_s: float | None = None

    def unhealthy_because(self) -> str:
        return "" if self.up else "its health check failed: ConnectError (connection refused or closed)"

    def start(self) -> float:
        self.starts += 1
        if self.restart_fails and self.starts > 1:
            raise ServerFailed("the start command exited with 1: refapp serve")
        self.up = self.running = True
        self.last_ready_s = 1.0
        return 1.0

    def stop(self) -> None:
        self.up = self.running = False

    def log_tails(self) -> str:
        return "--- server.log (last lines) ---\nSegmentation fault"


class FakeReport:
    @contextmanager
    def phase(self, name: str, target: str = "") -> Iterator[None]:
        yield


class FakeMachine:
    def __init__(self, link_up: bool) -> None:
        self.link_up = link_up

    @property
    def ssh(self) -> Any:
        if not self.link_up:
            raise InfrastructureError("VM hns-x is not running (not started or closed)")
        return SimpleNamespace(alive=True)


def deployment(server: FakeServer, link_up: bool = True) -> Any:
    target = SimpleNamespace(name="linux-debian12")
    return Deployment(target=target, machine=FakeMachine(link_up), installed=None, pcap=None,  # type: ignore[arg-type]
                      watch_from=0.0, report=FakeReport(), logs_dir=Path("/nonexistent"),  # type: ignore[arg-type]
                      _server=server)  # type: ignore[arg-type]


def test_a_server_a_check_stopped_is_restarted_without_a_word() -> None:
    server = FakeServer()
    found = deployment(server)
    assert found.server() is server and server.starts == 1
    server.stop()  # server_stops_cleanly, determinism_restart
    assert found.server() is server and server.starts == 2


def test_a_server_that_died_on_its_own_fails_the_check_that_finds_it_and_serves_the_next() -> None:
    server = FakeServer()
    found = deployment(server)
    found.server()
    server.up = False  # killed from outside, crashed: nobody called stop()
    with pytest.raises(ServerDied, match=r"died after it had started healthy \(its health check failed: "
                                         r"ConnectError.*restarted for the checks after this one") as died:
        found.server()
    assert "Segmentation fault" in died.value.detail
    assert found.server() is server and server.starts == 2  # the next check gets the restarted one


def test_a_dead_server_that_cannot_restart_is_named_for_every_later_check() -> None:
    server = FakeServer(restart_fails=True)
    found = deployment(server)
    found.server()
    server.up = False
    for _ in range(2):
        with pytest.raises(ServerDied, match="and a restart failed: the start command exited with 1"):
            found.server()


def test_silence_over_a_fallen_ssh_link_is_not_called_a_death() -> None:
    server = FakeServer()
    found = deployment(server, link_up=False)
    server.up = server.running = True
    server.up = False
    assert found.server() is server  # restarted; with a real link gone the start itself is broken


def test_a_server_that_does_not_start_again_after_a_check_stopped_it_fails_what_needs_it() -> None:
    """server_starts passed, so a failed restart is nobody's finding unless the checks fail on it."""
    server = FakeServer(restart_fails=True)
    found = deployment(server)
    found.server()
    server.stop()  # server_stops_cleanly
    for _ in range(2):
        with pytest.raises(ServerDied, match="did not start again after a check stopped it: the start command"):
            found.server()


def test_a_server_that_never_started_stays_server_starts_finding() -> None:
    class NeverStarts(FakeServer):
        def start(self) -> float:
            raise ServerFailed("the start command exited with 1: refapp serve")

    found = deployment(NeverStarts())
    with pytest.raises(ServerFailed):
        found.server()
