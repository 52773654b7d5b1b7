"""Local-first means local: while serving, the release listens only on its declared ports and
only on loopback."""

from __future__ import annotations

import shlex

import pytest

from harness.checks import sockets
from harness.checks.shared import expect_none
from harness.errors import InfrastructureError
from harness.server import Server
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_listening_loopback(deployment: Deployment, server: Server, report) -> None:
    """Every socket a release process listens on is a declared port bound to loopback."""
    machine, installed = deployment.machine, deployment.installed
    spec = deployment.target.profile.server
    pid = machine.run(f"cat {shlex.quote(server.pid_file)} 2>/dev/null", timeout=30).stdout.strip()
    family = sockets.process_tree(machine, int(pid)) if pid.isdigit() else set()
    found = sockets.listeners(machine, installed.facts.os)
    if not found:
        raise InfrastructureError("no listening socket at all in the guest (not even its SSH server): "
                                  "the socket tables could not be read", hint="see the VM's command log")
    ours = sockets.of_release(found, installed.roots, family)
    report.attach_text("release's listeners:\n" + ("\n".join(s.describe() for s in ours) or "(none)")
                       + "\n\nevery listener in the guest:\n" + "\n".join(s.describe() for s in found),
                       "listening sockets")
    assert any(s.port == spec.port for s in ours), (
        f"no release process listens on the declared port {spec.port} while the server is healthy "
        f"(server pid {pid or '?'}); listeners seen: {', '.join(s.describe() for s in found) or 'none'}")
    expect_none(sockets.problems(ours, (spec.port, *spec.ports)),
                "the release listens beyond its declared loopback ports")
