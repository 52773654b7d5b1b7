"""One cell of the test matrix: a release tarball on a base image, judged by a profile.

``--release`` and ``--image`` may each be given several times; every pair is a :class:`TargetSpec`
(the parameter pytest sees), resolved on first use into a :class:`Target` with the tarball checked
and the profile's per-OS overrides applied. Its ``name`` is the "target" the reports group by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.profile import Profile, select_profile
from harness.release import (
    ImagePlatform,
    Release,
    check_release_fits,
    image_platform,
    load_release,
    pin_release,
)
from harness.release_name import parse_release_name

# The QEMU provider runs guests of the host's own architecture (software emulation of another
# architecture is far too slow to be useful here).
QEMU_GUEST_ARCH = "x86_64"


@dataclass(frozen=True)
class TargetSpec:
    """What the command line asked for; cheap, hashable, and readable as a test id."""

    release_path: Path
    image: str
    name: str  # the report's target: the image, plus the release when several are tested

    def __str__(self) -> str:
        return self.name


def matrix(release_paths: list[Path], images: list[str]) -> list[TargetSpec]:
    several = len(release_paths) > 1
    specs = []
    for path in release_paths:
        for image in images:
            label = f"{image}+{_release_label(path)}" if several else image
            specs.append(TargetSpec(path, image, label))
    return specs


def _release_label(path: Path) -> str:
    parent = path.parent.name
    return path.name.removesuffix(".tar.gz") + (f"@{parent}" if parent not in ("dist", "") else "")


@dataclass(frozen=True)
class Target:
    spec: TargetSpec
    profile: Profile  # resolved for the image's OS
    release: Release
    platform: ImagePlatform

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def image(self) -> str:
        return self.spec.image


def resolve(spec: TargetSpec, profile: Profile, pin_dir: Path | None = None,
            guest_arch: str = QEMU_GUEST_ARCH, forced: Sequence[str] = ()) -> Target:
    """Check the tarball and that it fits the image, and pin its bytes for the run (into
    ``pin_dir``); raises ReleaseError (a usage error). The profile is resolved for the image's OS
    and the release's version (``forced`` variants win over the automatic pick)."""
    platform = image_platform(spec.image, guest_arch if spec.image.startswith("linux") else "arm64")
    name = parse_release_name(spec.release_path.name)
    resolved = select_profile(profile, platform.os, name.parsed, forced)
    release = load_release(spec.release_path, resolved.release)
    check_release_fits(release, platform, resolved.release)
    if pin_dir is not None:
        release = pin_release(release, pin_dir, resolved.install.files)
    return Target(spec, resolved, release, platform)
