"""The macOS checks' guest facts: the Mach-O executables of an installed tree, and whether
Gatekeeper kills one at launch. Installing from a quarantined download is
:mod:`harness.install.quarantined`."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from harness.guest import Guest

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
