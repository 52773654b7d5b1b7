"""What only a Mac can get wrong: Gatekeeper, code signatures, Rosetta and the python3 stub.

Active when the target is macOS (a tart or Orchard guest); on Linux guests every test here skips
before any VM boots, saying why. Each check runs in the primary deployment's VM after the
release was installed offline (Softnet blocks everything but the host gateway).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

import pytest

from harness.install import UPLOAD_DIR, run_step
from harness.suite.checks import expect_none
from harness.suite.deployment import Deployment
from harness.suite.target import Target

pytestmark = [pytest.mark.vm, pytest.mark.portability]

SCRATCH = "/tmp/hns-quarantine"
# What Safari writes on a download: flags;hex time;agent;event id. Gatekeeper only needs it present.
QUARANTINE_ATTR = "com.apple.quarantine"
CLT_STUB_INSTALLER = "Install Command Line Developer Tools"
ROSETTA_RUNTIME = "/Library/Apple/usr/share/rosetta/rosetta"
LAUNCH_PROBE_S = 10  # a binary still running after this was not blocked at launch
GATEKEEPER_KILL = 137  # SIGKILL at exec: Gatekeeper/AMFI refused the binary


@pytest.fixture(scope="session")
def macos_target(target: Target) -> Target:
    if target.platform.os != "darwin":
        pytest.skip(f"macOS-only check: image {target.image} is a {target.platform.os} guest")
    return target


@dataclass(frozen=True)
class Executable:
    path: str
    archs: tuple[str, ...]


def list_macho_executables(deployment: Deployment, roots: tuple[str, ...]) -> list[Executable]:
    """Every Mach-O file with an execute bit under ``roots``, with the architectures it carries."""
    quoted = " ".join(shlex.quote(root) for root in roots)
    script = (
        f"find {quoted} -type f -perm -u+x 2>/dev/null | while IFS= read -r f; do "
        "case \"$(file -b \"$f\")\" in Mach-O*) printf '%s\\t%s\\n' \"$f\" \"$(lipo -archs \"$f\" 2>/dev/null)\";; esac; done"
    )
    result = deployment.machine.run(script, timeout=600)
    assert result.ok, f"listing executables failed: {result.stderr[-500:]}"
    found = []
    for line in result.stdout.splitlines():
        path, _, archs = line.partition("\t")
        found.append(Executable(path, tuple(archs.split())))
    return found


def test_macos_executables_are_arm64_native(macos_target: Target, deployment: Deployment, report) -> None:
    """No executable needs Rosetta: each carries arm64, and nothing started oahd (Rosetta's daemon)."""
    executables = list_macho_executables(deployment, deployment.installed.roots)
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
    executables = list_macho_executables(deployment, deployment.installed.roots)
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


def _launch_probe(deployment: Deployment, path: str) -> int:
    """Exit status of ``path --version`` cut at LAUNCH_PROBE_S with SIGTERM (143): 137 = killed at exec."""
    quoted = shlex.quote(path)
    script = (
        f"{quoted} --version </dev/null >/dev/null 2>&1 & pid=$!; "
        f"( sleep {LAUNCH_PROBE_S}; kill -TERM $pid 2>/dev/null ) & watchdog=$!; "
        "wait $pid; status=$?; kill $watchdog 2>/dev/null; echo $status"
    )
    result = deployment.machine.run(script, timeout=LAUNCH_PROBE_S + 30)
    return int(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else -1


def test_macos_quarantined_download_installs_and_runs(macos_target: Target, deployment: Deployment, report) -> None:
    """The tarball as a browser leaves it (``com.apple.quarantine`` set) still installs offline,
    and Gatekeeper lets every installed executable start; otherwise it names the blocked ones."""
    machine, installed = deployment.machine, deployment.installed
    profile = macos_target.profile
    home, upload = f"{SCRATCH}/home", f"{SCRATCH}/upload"
    machine.run(f"rm -rf {SCRATCH} && mkdir -p {home} {upload} && cp -R {UPLOAD_DIR}/. {upload}/", timeout=300, check=True)
    stamp = f"0083;{int(time.time()):08x};Safari;"
    machine.run(f"xattr -w {QUARANTINE_ATTR} {shlex.quote(stamp)} {upload}/*", timeout=60, check=True)
    assert machine.run(f"xattr -p {QUARANTINE_ATTR} {upload}/{shlex.quote(installed.release.filename)}", timeout=30).ok
    context = profile.context({
        "home": home, "user": installed.facts.user, "upload": upload,
        "tarball": f"{upload}/{installed.release.filename}", "version": installed.release.name.version,
    })
    command = profile.render(profile.install.command, context, "install.command")
    env = {k: profile.render(v, context, f"install.env.{k}") for k, v in profile.install.env.items()}
    run = run_step(machine, command, {**env, "HOME": home}, profile.install.timeout_s, home)
    report.attach_text(f"$ {run.command}\n{run.output}\n[exit {run.exit_code}]", "install from the quarantined tarball")
    assert run.ok, f"installing from the quarantined tarball failed with exit {run.exit_code}:\n{run.tail()}"
    roots = tuple(profile.render(p, context, "install.tree") for p in profile.install.tree)
    executables = list_macho_executables(deployment, roots)
    quarantined = machine.run(f"find {' '.join(map(shlex.quote, roots))} -xattrname {QUARANTINE_ATTR} 2>/dev/null | head -n 50",
                              timeout=120)
    blocked = [exe.path for exe in executables if _launch_probe(deployment, exe.path) == GATEKEEPER_KILL]
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


def test_macos_offline_install_and_serve(macos_target: Target, deployment: Deployment, server) -> None:
    """The install above ran with Softnet blocking every address but the host gateway, and the
    server came up healthy: nothing needed the network."""
    assert deployment.installed.installer.ok, f"the offline install failed:\n{deployment.installed.installer.tail()}"
    assert server.healthy(), "the server is not healthy after an offline install"
    lookup = deployment.machine.run("host -W 3 portability-harness-egress-probe.invalid || true", timeout=30)
    assert "has address" not in lookup.stdout, "a name under .invalid resolved: the guest's resolver is not cut off"
