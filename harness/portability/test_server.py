"""The release's server: it starts healthy within its deadline, stops cleanly, and writes only
where the profile says."""

from __future__ import annotations

import httpx
import pytest

from harness.checks.shared import expect_none
from harness.completions import CompletionClient
from harness.guest_tree import changes, outside, take_snapshot
from harness.install.first import Installed, snapshot_exclusions
from harness.server import Server
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_server_starts(deployment: Deployment, installed: Installed, report) -> None:
    """Started as the profile says, the server answers its health path within the deadline."""
    server = deployment.server()  # ServerFailed (a product defect) carries the log tails
    spec = deployment.target.profile.server
    reply = httpx.get(f"{server.base_url}{spec.health_path}", timeout=10, trust_env=False)
    report.attach_text(f"GET {spec.health_path} -> {reply.status_code}\n{reply.text}\n"
                       f"ready after {server.last_ready_s or 0:.1f} s (deadline {spec.ready_timeout_s:g} s)",
                       "health answer")
    report.attach_text(server.log_tails().lstrip(), "server log tails")
    assert reply.status_code == 200, f"{spec.health_path} answered {reply.status_code}: {reply.text[:300]}"


def test_server_stops_cleanly(server: Server, report) -> None:
    """The profile's stop command ends the server: process gone, port closed, no SIGKILL needed."""
    stopped = server.stop()
    report.attach_text(f"$ stop\n{stopped.command_output}\n[exit {stopped.command_exit}, {stopped.duration_s:.1f} s]",
                       "stop output")
    report.attach_text(server.log_tails().lstrip(), "server log tails after stop")
    expect_none(stopped.problems(), "the server did not stop cleanly")


def test_footprint_confined(deployment: Deployment, client: CompletionClient, report) -> None:
    """Installing and then serving wrote only under install.writes and server.writes."""
    installed = deployment.installed
    now = take_snapshot(deployment.machine, installed.facts.os, snapshot_exclusions(installed.bound))
    allowed = list(dict.fromkeys([*installed.allowed, *installed.bound.server.writes]))
    found = changes(installed.before, now)
    report.attach_text("\n".join(c.describe() for c in found) or "(no changes)", "file-system changes (install + serve)")
    stray = outside(found, allowed)
    expect_none([c.describe() for c in stray], f"the release wrote outside {', '.join(allowed)}")
