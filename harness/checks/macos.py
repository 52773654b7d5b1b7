"""The macOS checks' guest work: listing Mach-O executables, probing a launch for Gatekeeper's
kill, and installing from a tarball carrying the quarantine attribute a browser sets."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

from harness.guest import Guest
from harness.install import UPLOAD_DIR, GuestFacts, Installed, InstallerRun, run_step
from harness.profile import Profile

SCRATCH = "/tmp/hns-quarantine"
# What Safari writes on a download: flags;hex time;agent;event id. Gatekeeper only needs it present.
QUARANTINE_ATTR = "com.apple.quarantine"
CLT_STUB_INSTALLER = "Install Command Line Developer Tools"
ROSETTA_RUNTIME = "/Library/Apple/usr/share/rosetta/rosetta"
LAUNCH_PROBE_S = 10  # a binary still running after this was not blocked at launch
GATEKEEPER_KILL = 137  # SIGKILL at exec: Gatekeeper/AMFI refused the binary


@dataclass(frozen=True)
class Executable:
    path: str
    archs: tuple[str, ...]


def list_macho_executables(guest: Guest, roots: tuple[str, ...]) -> list[Executable]:
    """Every Mach-O file with an execute bit under ``roots``, with the architectures it carries."""
    quoted = " ".join(shlex.quote(root) for root in roots)
    script = (
        f"find {quoted} -type f -perm -u+x 2>/dev/null | while IFS= read -r f; do "
        "case \"$(file -b \"$f\")\" in Mach-O*) printf '%s\\t%s\\n' \"$f\" \"$(lipo -archs \"$f\" 2>/dev/null)\";; esac; done"
    )
    result = guest.run(script, timeout=600)
    assert result.ok, f"listing executables failed: {result.stderr[-500:]}"
    found = []
    for line in result.stdout.splitlines():
        path, _, archs = line.partition("\t")
        found.append(Executable(path, tuple(archs.split())))
    return found


def launch_status(guest: Guest, path: str) -> int:
    """Exit status of ``path --version`` cut at LAUNCH_PROBE_S with SIGTERM (143): 137 = killed at exec."""
    quoted = shlex.quote(path)
    script = (
        f"{quoted} --version </dev/null >/dev/null 2>&1 & pid=$!; "
        f"( sleep {LAUNCH_PROBE_S}; kill -TERM $pid 2>/dev/null ) & watchdog=$!; "
        "wait $pid; status=$?; kill $watchdog 2>/dev/null; echo $status"
    )
    result = guest.run(script, timeout=LAUNCH_PROBE_S + 30)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return int(last) if last.isdigit() else -1


def install_quarantined(machine: Guest, installed: Installed, profile: Profile) -> tuple[InstallerRun, tuple[str, ...]]:
    """Install again from a copy of the upload marked as downloaded (``com.apple.quarantine``),
    into a scratch home; returns the installer run and the installed roots."""
    home, upload = f"{SCRATCH}/home", f"{SCRATCH}/upload"
    machine.run(f"rm -rf {SCRATCH} && mkdir -p {home} {upload} && cp -R {UPLOAD_DIR}/. {upload}/", timeout=300, check=True)
    stamp = f"0083;{int(time.time()):08x};Safari;"
    machine.run(f"xattr -w {QUARANTINE_ATTR} {shlex.quote(stamp)} {upload}/*", timeout=60, check=True)
    assert machine.run(f"xattr -p {QUARANTINE_ATTR} {upload}/{shlex.quote(installed.release.filename)}", timeout=30).ok
    facts = installed.facts
    bound = GuestFacts(facts.os, facts.arch, facts.user, home, facts.pythons).bind(profile, installed.release, upload)
    run = run_step(machine, bound.install.command, {**bound.install.env, "HOME": home}, bound.install.timeout_s, home)
    return run, bound.install.tree
