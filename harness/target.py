"""One cell of the test matrix: a release tarball on a base image, judged by a profile.

``--release`` and ``--image`` may each be given several times; every pair is a :class:`TargetSpec`
(the parameter pytest sees), resolved on first use into a :class:`Target` with the tarball checked
and the profile's per-OS overrides applied. Its ``name`` is the "target" the reports group by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from harness.hashing import sha256_file
from harness.journal import GenericRecord
from harness.profile import Profile, select_profile
from harness.release import (
    ImagePlatform,
    KnownDigest,
    Release,
    check_release_fits,
    image_platform,
    load_release,
    pin_release,
)
from harness.release_name import parse_release_name
from harness.vm.provider import VMOptions

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


def image_platform_of(image: str, guest_arch: str = QEMU_GUEST_ARCH) -> ImagePlatform:
    """Linux images run the QEMU guest's architecture; macOS images (tart, Orchard) are arm64."""
    return image_platform(image, guest_arch if image.startswith("linux") else "arm64")


def resolve(spec: TargetSpec, profile: Profile, pin_dir: Path | None = None,
            guest_arch: str = QEMU_GUEST_ARCH, forced: Sequence[str] = (), known: KnownDigest | None = None) -> Target:
    """Check the tarball and that it fits the image, and pin its bytes for the run (into
    ``pin_dir``); raises ReleaseError (a usage error). The profile is resolved for the image's OS
    and the release's version (``forced`` variants win over the automatic pick). ``known``: the
    tarball's digest as another process measured it, used while the file has not changed since."""
    platform = image_platform_of(spec.image, guest_arch)
    name = parse_release_name(spec.release_path.name)
    resolved = select_profile(profile, platform.os, name.parsed, forced)
    release = load_release(spec.release_path, resolved.release, known=known)
    check_release_fits(release, platform, resolved.release)
    if pin_dir is not None:
        release = pin_release(release, pin_dir, resolved.install.files)
    return Target(spec, resolved, release, platform)


@dataclass(frozen=True)
class TargetInputs:
    """Everything a target was made from, as the journal's ``target`` record keeps it: enough to
    make the same target again and to notice when any input has changed since."""

    target: str
    release_path: str  # the bytes the run used (its pinned copy)
    release_origin: str  # where the user's tarball was
    release_sha256: str
    companions: dict[str, str]  # files published beside the tarball (installer, checksums) -> sha256
    profile_source: str
    profile_sha256: str
    image: str
    provider: str
    image_digest: str  # "" when the provider cannot tell
    warm: bool
    cpus: int
    memory_mb: int

    @classmethod
    def of(cls, target: Target, provider: str, image_digest: str, options: VMOptions) -> TargetInputs:
        release = target.release
        folder = release.path.parent
        names = [*target.profile.install.files]
        if release.checksum.file is not None:
            names.append(release.checksum.file.name)
        companions = {name: sha256_file(folder / name) for name in dict.fromkeys(names) if (folder / name).is_file()}
        source = target.profile.source
        return cls(
            target=target.name, release_path=str(release.path), release_origin=str(release.origin or release.path),
            release_sha256=release.sha256, companions=companions, profile_source=str(source),
            profile_sha256=sha256_file(source) if source.is_file() else "", image=target.image,
            provider=provider, image_digest=image_digest, warm=options.warm, cpus=options.cpus,
            memory_mb=options.memory_mb,
        )

    def record(self) -> GenericRecord:
        return GenericRecord(kind="target", target=self.target, data=asdict(self))

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> TargetInputs:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
