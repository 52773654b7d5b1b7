"""What only a Mac can get wrong: Gatekeeper, code signatures, Rosetta and the python3 stub.

Active when the target is macOS (a tart or Orchard guest); on Linux guests every test here skips
before any VM boots, saying why. Each check runs in the primary deployment's VM after the
release was installed offline (Softnet blocks everything but the host gateway).
"""

from __future__ import annotations

import shlex

import pytest

from harness.checks.macos import (
    CLT_STUB_INSTALLER,
    GATEKEEPER_KILL,
    ROSETTA_RUNTIME,
    launch_status,
    list_macho_executables,
)
from harness.checks.offline import network_failures
from harness.checks.shared import expect_none
from harness.install.quarantined import QUARANTINE_ATTR, install_quarantined
from harness.server import Server
from harness.suite.deployment import Deployment
from harness.target import Target

pytestmark = [pytest.mark.vm, pytest.mark.portability]

@pytest.fixture(scope="session")
def macos_target(target: Target) -> Target:
    if target.platform.os != "darwin":
        pytest.skip(f"macOS-only check: image {target.image} is a {target.platform.os} guest")
    return target


def test_macos_executables_are_arm64_native(macos_target: Target, deployment: Deployment, report) -> None:
    """No executable needs Rosetta: each carries arm64, and nothing started oahd (Rosetta's daemon)."""
    executables = list_macho_executables(deployment.machine, deployment.installed.roots)
    report.attach_text("\n".join(f"{e.path}: {' '.join(e.archs) or '?'}" for e in executables), "Mach-O architectures")
    assert executables, f"no Mach-O executable found under {', '.join(deployment.installed.roots)}"
    expect_none([f"{e.path} ({' '.join(e.archs) or 'unknown'})" for e in executables if "arm64" not in e.archs],
                "executables without an arm64 slice would need Rosetta, which an offline Mac cannot install")
    oahd = deployment.machine.run("pgrep -x oahd || true", timeout=30)
    assert not oahd.stdout.strip(), "oahd (Rosetta's translation daemon) is running: something ran as x86_64"
    assert not deployment.machine.file_exists(ROSETTA_RUNTIME), "Rosetta got installed during install or serving"


def test_macos_code_signatures(macos_target: Target, deployment: Deployment, report) -> None:
    """``codesign --verify`` passes for every executable (arm64 refuses unsigned code); the
    ``spctl --assess`` verdicts (Gatekeeper's view) are attached per executable."""
    executables = list_macho_executables(deployment.machine, deployment.installed.roots)
    verdicts, broken = [], []
    for exe in executables:
        path = shlex.quote(exe.path)
        signed = deployment.machine.run(f"codesign --verify --strict --verbose=2 {path}", timeout=60)
        assessed = deployment.machine.run(f"spctl --assess --type execute --verbose=2 {path}", timeout=60)
        verdicts.append(f"{exe.path}\n  codesign: exit {signed.exit_code} {signed.stderr.strip()}\n"
                        f"  spctl: exit {assessed.exit_code} {assessed.stderr.strip()}")
        if not signed.ok:
            broken.append(f"{exe.path}: {signed.stderr.strip().splitlines()[-1] if signed.stderr.strip() else 'invalid'}")
    report.attach_text("\n".join(verdicts) or "(no executables)", "codesign and spctl per executable")
    expect_none(broken, "executables whose code signature does not verify")


def test_macos_quarantined_download_installs_and_runs(macos_target: Target, deployment: Deployment, report) -> None:
    """The tarball as a browser leaves it (``com.apple.quarantine`` set) still installs offline,
    and Gatekeeper lets every installed executable start; otherwise it names the blocked ones."""
    machine = deployment.machine
    quarantined_install = install_quarantined(machine, deployment.installed, deployment.target.profile)
    run, roots = quarantined_install.installer, quarantined_install.roots
    report.attach_text(f"$ {run.command}\n{run.output}\n[exit {run.exit_code}]", "install from the quarantined tarball")
    assert run.ok, f"installing from the quarantined tarball failed with exit {run.exit_code}:\n{run.tail()}"
    executables = list_macho_executables(machine, roots)
    quarantined = machine.run(f"find {' '.join(map(shlex.quote, roots))} -xattrname {QUARANTINE_ATTR} 2>/dev/null | head -n 50",
                              timeout=120)
    blocked = [exe.path for exe in executables if launch_status(machine, exe.path) == GATEKEEPER_KILL]
    report.attach_text(f"still quarantined after install:\n{quarantined.stdout or '(none)'}\n\n"
                       f"killed at launch:\n" + ("\n".join(blocked) or "(none)"), "Gatekeeper launch probes")
    expect_none(blocked, "Gatekeeper kills these executables of a downloaded (quarantined) release at launch")


def test_macos_never_triggers_the_python3_stub(macos_target: Target, deployment: Deployment, server) -> None:
    """On a Mac without the Command Line Tools, /usr/bin/python3 is a stub that pops up the CLT
    installer (which needs the network). Install and serving must never have called it."""
    popped = deployment.machine.run(f"pgrep -f {shlex.quote(CLT_STUB_INSTALLER)} || true", timeout=30)
    assert not popped.stdout.strip(), (
        "the Command Line Tools installer was launched: something ran /usr/bin/python3 (or another CLT stub)")
    assert not deployment.machine.is_dir("/Library/Developer/CommandLineTools"), (
        "the Command Line Tools are installed in the guest: the image is not clean, the check proves nothing")


def test_macos_offline_install_and_serve(macos_target: Target, deployment: Deployment, server: Server,
                                        report) -> None:
    """Offline really was offline, and nothing papered over a failed network attempt: the guest
    cannot resolve names (Softnet leaves only the host gateway), and neither the installer's
    output nor the server's logs show a lookup or connection that failed while install and
    serving went on. (A Mac guest has no packet capture: this is what stands in for egress_none.)"""
    lookup = deployment.machine.run("host -W 3 portability-harness-egress-probe.invalid || true", timeout=30)
    assert "has address" not in lookup.stdout, "a name under .invalid resolved: the guest's resolver is not cut off"
    logs = server.log_tails()
    report.attach_text(logs.lstrip(), "server log tails (network failures looked for)")
    found = network_failures({"installer output": deployment.installed.installer.output, "server logs": logs})
    expect_none(found, "the release tried the network and carried on when it failed")
