"""Copying a release (tarball, checksums file, installer files) into the guest's upload directory."""

from __future__ import annotations

import posixpath
import time

from harness.errors import InfrastructureError
from harness.guest import Guest
from harness.profile import Profile
from harness.release import Release

UPLOAD_DIR = "/tmp/harness-upload"


def upload(guest: Guest, release: Release, profile: Profile, directory: str = UPLOAD_DIR) -> float:
    """Copy the tarball, its checksums file and the installer files beside it into the guest."""
    started = time.monotonic()
    guest.run(f"rm -rf {directory} && mkdir -p {directory}", timeout=60, check=True)
    sent = guest.put(release.path, f"{directory}/{release.filename}")
    if sent.sha256 != release.sha256:
        raise InfrastructureError(
            f"{release.path} is not the tarball checked at the start of the run "
            f"(sha256 {sent.sha256}, expected {release.sha256})",
            hint="something rewrote the release file during the run; run again once builds are done",
        )
    for name in profile.install.files:
        local = release.path.parent / name
        if not local.is_file():
            raise InfrastructureError(
                f"the profile's install.files lists {name}, but {local} does not exist",
                hint="put the installer next to the tarball (the release build writes it to dist/)",
            )
        guest.put(local, f"{directory}/{posixpath.basename(name)}", mode=0o755)
    if release.checksum.file is not None:
        # Published beside the tarball, so an installer that verifies it finds it there too.
        guest.put(release.checksum.file, f"{directory}/{release.checksum.file.name}")
    return time.monotonic() - started
