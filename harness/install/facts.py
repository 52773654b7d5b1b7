"""What the install needs to know of a guest: its OS, architecture, user, home and any Python."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import InfrastructureError
from harness.guest import Guest
from harness.install.upload import UPLOAD_DIR
from harness.profile import BoundProfile, Profile, bind
from harness.release import Release

PYTHON_NAMES = ("python3", "python", "python2")


@dataclass(frozen=True)
class GuestFacts:
    os: str  # linux | darwin
    arch: str
    user: str
    home: str
    pythons: tuple[str, ...]  # interpreters found on PATH (a clean image has none)

    def bind(self, profile: Profile, release: Release, upload: str = UPLOAD_DIR) -> BoundProfile:
        """The profile with every template rendered for this guest and release (uploaded to ``upload``)."""
        return bind(profile, {"home": self.home, "user": self.user, "upload": upload,
                              "tarball": f"{upload}/{release.filename}", "version": release.name.version})


def probe_guest(guest: Guest) -> GuestFacts:
    script = (
        "uname -s; uname -m; id -un; printf '%s\\n' \"$HOME\"; "
        + "; ".join(f"command -v {name} || true" for name in PYTHON_NAMES)
    )
    result = guest.run(script, timeout=60)
    lines = result.stdout.splitlines()
    if not result.ok or len(lines) < 4:
        raise InfrastructureError(
            f"could not probe the guest (exit {result.exit_code})",
            hint="the guest's shell is not POSIX or SSH is unwell; see the VM's command log",
            detail=result.stderr[-2000:],
        )
    arch = {"aarch64": "arm64", "amd64": "x86_64"}.get(lines[1], lines[1])
    return GuestFacts(os=lines[0].lower(), arch=arch, user=lines[2], home=lines[3],
                      pythons=tuple(line for line in lines[4:] if line.strip()))
