"""The release tarball on the host: does it exist, is it intact, and which platform is it for.

Checked before any VM boots, so that a typo in a path or a truncated download costs a second, not
a boot. Names are read by :mod:`harness.release_name`; a ``checksums.txt`` beside the tarball, when
present, must list it with the right sha256.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.hashing import sha256_file
from harness.profile import ReleaseSpec
from harness.release_name import (  # noqa: F401  (re-exported: the release's own names)
    ARCH_ALIASES,
    ReleaseError,
    ReleaseName,
    ReleaseNameError,
    parse_release_name,
)


@dataclass(frozen=True)
class ChecksumVerdict:
    """What the published checksums file says about the tarball. A mismatch is a finding about
    the release (a stale checksums file was published), reported by the ``release_checksum``
    check rather than refused up front: the tarball itself may still be worth testing."""

    file: Path | None  # None: no checksums file beside the tarball
    expected: str | None = None
    problem: str = ""

    @property
    def verified(self) -> bool:
        return self.file is not None and not self.problem


# Set by `harness run` for its child pytest: the sha256 of each tarball it read whole in its
# preflight, with the file's identity then, so the child does not read the tarball again.
DIGESTS_ENV = "HARNESS_RELEASE_DIGESTS"


@dataclass(frozen=True)
class FileIdentity:
    """Which bytes a path held when it was hashed: a build that rewrites the file in place changes
    its size or mtime, one that moves a new file over it the inode as well."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        found = path.stat()
        return cls(found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


@dataclass(frozen=True)
class KnownDigest:
    """A file's sha256, valid while the file keeps the identity it had when it was hashed."""

    sha256: str
    identity: FileIdentity

    @classmethod
    def measure(cls, path: Path) -> KnownDigest | None:
        """Hash ``path``; None when the file changed while it was read (nothing to vouch for)."""
        before = FileIdentity.of(path)
        sha = sha256_file(path)
        return cls(sha, before) if FileIdentity.of(path) == before else None

    def holds_for(self, path: Path) -> bool:
        try:
            return FileIdentity.of(path) == self.identity
        except OSError:
            return False


def digest_handover(releases: Sequence[Release]) -> str:
    """The value of :data:`DIGESTS_ENV` for the releases a parent process read."""
    return json.dumps({str(r.path.resolve()): {"sha256": r.known.sha256, **asdict(r.known.identity)}
                       for r in releases if r.known is not None})


def handed_over_digest(path: Path, environ: Mapping[str, str] = os.environ) -> KnownDigest | None:
    """The digest the parent process handed over for ``path``, when it still holds for the file."""
    try:
        entry = json.loads(environ.get(DIGESTS_ENV) or "{}").get(str(path.expanduser().resolve()))
        known = KnownDigest(entry.pop("sha256"), FileIdentity(**entry)) if entry else None
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    return known if known is not None and known.holds_for(path.expanduser()) else None


@dataclass(frozen=True)
class Release:
    path: Path  # the bytes the run uses (a pinned copy once pin_release ran)
    name: ReleaseName
    sha256: str
    size: int
    checksum: ChecksumVerdict
    origin: Path | None = None  # where the user's tarball lives, when ``path`` is a pinned copy
    known: KnownDigest | None = None  # how ``sha256`` was measured, when the file stood still meanwhile

    @property
    def checksum_source(self) -> Path | None:
        """The checksums file that vouched for ``sha256``, if one did."""
        return self.checksum.file if self.checksum.verified else None

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def id(self) -> str:
        """Short, stable label for test ids and report rows."""
        suffix = f"-{self.name.backend}" if self.name.backend else ""
        variant = _variant_label(self.origin or self.path)
        return f"{self.name.product}-{self.name.version}{suffix}{variant}"


def _variant_label(path: Path) -> str:
    # Broken variants of one release share its file name; the directory tells them apart.
    parent = path.parent.name
    return "" if parent in ("dist", "") else f"@{parent}"


def read_checksums(path: Path) -> dict[str, str]:
    """``sha256sum`` output: ``<hex>  <name>`` (``*name`` for binary mode) per line."""
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise ReleaseError(
                f"{path}:{number}: not a sha256sum line: {line!r}",
                hint="each line must be '<64 hex digits>  <file name>' as written by sha256sum",
            )
        sums[Path(parts[1].lstrip("*")).name] = parts[0].lower()
    return sums


def check_release_name(path: Path, spec: ReleaseSpec) -> ReleaseName:
    """The cheap checks, before any byte is read: the file is there, its name reads, and it names
    the profile's product and a backend the profile knows."""
    if not path.exists():
        raise ReleaseError(
            f"release tarball {path} does not exist",
            hint="pass the path of a built tarball with --release "
            "(the reference release is built by `python examples/reference_release/build.py`)",
        )
    if not path.is_file():
        raise ReleaseError(f"release {path} is not a file", hint="pass the .tar.gz itself, not its directory")
    name = parse_release_name(path.name)
    if name.product != spec.product:
        raise ReleaseError(
            f"{path.name} is a {name.product!r} release but the profile expects {spec.product!r}",
            hint="pick the matching profile with --profile",
        )
    if name.backend and name.backend not in spec.backends:
        raise ReleaseError(
            f"{path.name} carries the backend suffix {name.backend!r}, which the profile does not list",
            hint=f"known backends: {', '.join(spec.backends) or 'none'}; add it to [release] backends",
        )
    return name


def load_release(path: Path, spec: ReleaseSpec, known: KnownDigest | None = None) -> Release:
    """Everything that can be checked on the host; raises ReleaseError naming the next step.
    ``known``, when the caller already read the file to its end and it has not changed since,
    saves a second read."""
    path = path.expanduser()
    name = check_release_name(path, spec)
    if known is None or not known.holds_for(path):
        known = KnownDigest.measure(path)
    sha = known.sha256 if known is not None else sha256_file(path)
    return Release(path=path, name=name, sha256=sha, size=path.stat().st_size,
                   checksum=check_published_checksum(path, sha, spec.checksums), known=known)


def check_published_checksum(path: Path, sha: str, checksums_name: str) -> ChecksumVerdict:
    checksums = path.parent / checksums_name
    if not checksums.is_file():
        return ChecksumVerdict(None)
    try:
        listed = read_checksums(checksums).get(path.name)
    except ReleaseError as exc:
        return ChecksumVerdict(checksums, problem=f"{exc.message} ({exc.hint})")
    if listed is None:
        return ChecksumVerdict(checksums, problem=f"{checksums} does not list {path.name}: "
                               "the tarball and its checksums file come from different builds")
    if listed != sha:
        return ChecksumVerdict(checksums, listed, problem=(
            f"{path.name} has sha256 {sha}, but the published {checksums.name} says {listed}: "
            "the checksums file is stale or the tarball was altered"))
    return ChecksumVerdict(checksums, listed)


def pin_release(release: Release, directory: Path, companions: tuple[str, ...] = ()) -> Release:
    """Freeze the tarball (and the files published beside it) for the length of a run.

    A release rebuilt while a run is under way must not give two VMs two different tarballs:
    the files are hard-linked (copied across file systems) into ``directory``, which keeps the
    bytes seen at the start even when the build replaces the originals, and the copy is checked
    against the bytes measured before: a hard link to the very file hashed (same inode, size and
    mtime) holds them; anything else (a copy, a file rebuilt meanwhile) is hashed again.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = [release.path.name, *companions]
    if release.checksum.file is not None:
        names.append(release.checksum.file.name)
    for name in dict.fromkeys(names):
        source = release.path.parent / name
        if source.is_file():
            _link_or_copy(source, directory / name)
    pinned = directory / release.path.name
    same_file = release.known is not None and release.known.holds_for(pinned)
    if not same_file and sha256_file(pinned) != release.sha256:
        raise ReleaseError(
            f"{release.path} changed while the run was starting (sha256 differs from a moment ago)",
            hint="a build is rewriting the release right now: wait for it to finish, then run again",
        )
    checksum = release.checksum
    if checksum.file is not None:
        checksum = ChecksumVerdict(directory / checksum.file.name, checksum.expected, checksum.problem)
    return Release(pinned, release.name, release.sha256, release.size, checksum, origin=release.origin or release.path,
                   known=release.known)


def _link_or_copy(source: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


@dataclass(frozen=True)
class ImagePlatform:
    """What a base image runs: taken from the image name's OS part and the provider's machine."""

    image: str
    os: str
    arch: str

    @property
    def platform(self) -> str:
        return f"{self.os}-{self.arch}"


def image_platform(image: str, arch: str) -> ImagePlatform:
    """``linux-debian12`` -> linux; ``macos-sequoia`` -> darwin; the provider tells the arch."""
    family = image.split("-", 1)[0].lower()
    os_name = {"linux": "linux", "macos": "darwin", "darwin": "darwin"}.get(family)
    if os_name is None:
        raise ReleaseError(
            f"cannot tell the OS of image {image!r}",
            hint="image names start with linux- or macos- (see `harness images list`)",
        )
    return ImagePlatform(image=image, os=os_name, arch=ARCH_ALIASES.get(arch, arch))


def check_release_fits(release: Release, target: ImagePlatform, spec: ReleaseSpec) -> None:
    """A darwin tarball on a Linux image (or arm64 on x86_64) is a user error, not a product defect."""
    if release.name.platform != target.platform:
        raise ReleaseError(
            f"{release.filename} is built for {release.name.platform}, but image {target.image} is {target.platform}",
            hint="pick an image of the release's platform with --image, or the release built for this image",
        )
    if spec.platforms and release.name.platform not in spec.platforms:
        raise ReleaseError(
            f"the profile does not list {release.name.platform} among the product's platforms ({', '.join(spec.platforms)})",
            hint="add the platform to [release] platforms in the profile if the product really ships it",
        )
