"""Installing on a Mac from a tarball as a browser leaves it: carrying ``com.apple.quarantine``.

A copy of the upload is marked as downloaded and installed into a scratch home, so Gatekeeper's
view of a real download can be probed; the launch probes are in :mod:`harness.checks.macos`.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from dataclasses import dataclass

from harness.guest import Guest
from harness.install.first import Installed
from harness.install.run import InstallerRun, run_step
from harness.install.upload import UPLOAD_DIR
from harness.profile import Profile

SCRATCH = "/tmp/hns-quarantine"
# What Safari writes on a download: flags;hex time;agent;event id. Gatekeeper only needs it present.
QUARANTINE_ATTR = "com.apple.quarantine"


@dataclass(frozen=True)
class QuarantinedInstall:
    installer: InstallerRun
    roots: tuple[str, ...]  # the installed tree, under the scratch home


def install_quarantined(guest: Guest, installed: Installed, profile: Profile) -> QuarantinedInstall:
    """Install again from a copy of the upload marked as downloaded, into a scratch home."""
    home, upload = f"{SCRATCH}/home", f"{SCRATCH}/upload"
    guest.run(f"rm -rf {SCRATCH} && mkdir -p {home} {upload} && cp -R {UPLOAD_DIR}/. {upload}/", timeout=300, check=True)
    stamp = f"0083;{int(time.time()):08x};Safari;"
    guest.run(f"xattr -w {QUARANTINE_ATTR} {shlex.quote(stamp)} {upload}/*", timeout=60, check=True)
    assert guest.run(f"xattr -p {QUARANTINE_ATTR} {upload}/{shlex.quote(installed.release.filename)}", timeout=30).ok
    bound = dataclasses.replace(installed.facts, home=home).bind(profile, installed.release, upload)
    run = run_step(guest, bound.install.command, {**bound.install.env, "HOME": home}, bound.install.timeout_s, home)
    return QuarantinedInstall(run, bound.install.tree)
