"""Offline means offline: the guest made no network attempt while installing and serving."""

from __future__ import annotations

import time

import pytest

from harness.checks.shared import expect_none
from harness.egress import guest_attempts, summarize
from harness.errors import HarnessError
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]

# QEMU stamps captured frames from its own clock started at a whole second: allow for that.
CLOCK_SLACK_S = 2.0


def exercise_server(deployment: Deployment) -> str:
    """Serve one completion when the release can (so serving is watched too); say what happened.
    An install or server failure is another check's finding: the capture is judged regardless."""
    if not deployment.installed.installer.ok:
        return "the install failed, so only the install was watched"
    try:
        with deployment.client() as client:
            deployment.warm_up(client)
        return "install, server start and a completion were watched"
    except HarnessError as exc:
        return f"the server could not be exercised ({exc.message}); install and start-up were watched"


def test_egress_none(deployment: Deployment, report) -> None:
    """No DNS query, TCP connection attempt or UDP datagram left the guest during install and serving."""
    if deployment.pcap is None:
        pytest.skip("this VM was started without traffic capture")
    watched = exercise_server(deployment)
    time.sleep(1.0)  # let the last frames reach the capture file
    attempts = guest_attempts(deployment.pcap, since=deployment.watch_from - CLOCK_SLACK_S)
    folded = summarize(attempts)
    report.egress(deployment.name, [
        {"proto": s.first.protocol, "address": s.first.destination, "port": s.first.port,
         "host": (s.first.name or "").rstrip("."), "count": s.count, "first_seen": s.first.time}
        for s in folded
    ])
    report.attach_text(
        f"capture: {deployment.pcap}\nnetwork set-up: {deployment.network_note}\n"
        f"watching from {deployment.watch_from:.3f} (host clock): {watched}\n\n"
        + ("\n".join(s.describe() for s in folded) or "(no attempts)"),
        "network attempts")
    expect_none([s.describe() for s in folded], "the guest tried to reach the network")
