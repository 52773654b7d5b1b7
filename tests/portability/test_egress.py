"""Offline means offline: the guest made no network attempt while installing and serving."""

from __future__ import annotations

import time

import pytest

from harness.completions import CompletionClient
from harness.egress import guest_attempts, summarize
from harness.suite.checks import expect_none
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]

# QEMU stamps captured frames from its own clock started at a whole second: allow for that.
CLOCK_SLACK_S = 2.0


def test_egress_none(deployment: Deployment, client: CompletionClient, report) -> None:
    """No DNS query, TCP connection attempt or UDP datagram left the guest during install and serving."""
    if deployment.pcap is None:
        pytest.skip("this VM was started without traffic capture")
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
        f"watching from {deployment.watch_from:.3f} (host clock), install and serving included\n\n"
        + ("\n".join(s.describe() for s in folded) or "(no attempts)"),
        "network attempts")
    expect_none([s.describe() for s in folded], "the guest tried to reach the network")
