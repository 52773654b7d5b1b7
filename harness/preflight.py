"""Everything about a run's inputs that can be judged before a VM is judged here, before any VM.

``harness run``, ``shell`` and ``repro`` (and ``inspect`` and ``diff`` for the release itself) ask
the same questions in the same words: is this file a release (its content, not its suffix), is it
whole (read and decompressed to its last byte), is its name one the harness reads, would unpacking
it write outside its directory, does every image exist and is its OS known. A bad input ends the
command with one UsageError (exit 2) before pytest starts, a VM boots or a file is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config import HostPaths
from harness.errors import UsageError
from harness.inspect.archive import ReleaseContents, ReleaseFormat, read_release, sniff_format
from harness.inspect.archive_safety import escaping_members
from harness.profile import Profile, select_profile
from harness.release import (
    FileIdentity,
    KnownDigest,
    Release,
    check_release_fits,
    check_release_name,
    handed_over_digest,
    load_release,
)
from harness.release_name import ReleaseName, parse_release_name, try_parse_release_name
from harness.target import image_platform_of

SHOWN_PROBLEMS = 5  # the first few unsafe members name the problem; `harness inspect` lists them all


@dataclass(frozen=True)
class ReleaseInput:
    """A file or directory judged readable as a release, with its name's facts when it has them."""

    path: Path
    format: ReleaseFormat
    name: ReleaseName | None  # None for wheels and unpacked directories, which carry no release name


def judge_release_input(path: Path) -> ReleaseInput:
    """The one "is this a release" judgement: the format from the content, and a tarball's name
    read by the same parser ``harness run`` uses (a name one verb refuses, every verb refuses)."""
    path = path.expanduser()
    fmt = sniff_format(path)
    if fmt == "pkg":  # a package may carry the product's own name (tiles.pkg): its facts are inside
        return ReleaseInput(path, fmt, try_parse_release_name(path.name))
    name = parse_release_name(path.name) if fmt.startswith("tar") else None
    return ReleaseInput(path, fmt, name)


def check_release(path: Path, profile: Profile, variants: Sequence[str] = ()) -> Release:
    """A release a run can test: a tarball, named for the profile's product, whole to its last
    byte and safe to unpack; its sha256 comes from that same read."""
    given = judge_release_input(path)
    if given.format == "pkg":
        raise UsageError(f"{path} is a macOS installer package (a xar archive): installing a .pkg needs a macOS guest, "
                         "which the harness does not drive yet",
                         hint=f"`harness inspect {path}` reads it statically on any host; test the product's "
                         "tarball with `harness run` meanwhile")
    if given.name is None:
        raise UsageError(f"{path} is a {given.format}, not a release tarball",
                         hint="`harness run` tests the .tar.gz a product publishes; `harness inspect` reads "
                         "wheels and directories")
    spec = select_profile(profile, given.name.os, given.name.parsed, variants).release
    check_release_name(given.path, spec)  # cheap, before a read that may take a minute
    # The layers inside are the static checks' business (the pytest session inspects them); here
    # the file itself must be whole and safe to unpack, at the cost of one decompression.
    before = FileIdentity.of(given.path)
    contents = read_release(given.path, nested=False)
    refuse_escapes(contents)
    # The read's digest vouches for the file only if it stood still while it was read.
    known = KnownDigest(contents.sha256, before) if FileIdentity.of(given.path) == before else None
    return load_release(given.path, spec, known=known)


def refuse_escapes(contents: ReleaseContents) -> None:
    """Members that would land outside the unpack directory (absolute, ``..``, links leaving the
    release) make a release unsafe to unpack anywhere, the test VM included."""
    problems = escaping_members(contents)
    if not problems:
        return
    shown = "\n  ".join(f"{f.path or '(root)'}: {f.message} [{f.check}]" for f in problems[:SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    raise UsageError(
        f"release {contents.source} is unsafe to unpack: {len(problems)} member(s) would land outside its "
        f"directory\n  {shown}{more}",
        hint=f"rebuild the archive from inside its staging directory (tar -C DIR .); `harness inspect "
        f"{contents.source}` lists every finding",
    )


def check_images(images: Sequence[str], paths: HostPaths) -> None:
    """Every image is one this host can build or a provider has, and its OS is known."""
    from harness.images import image_store
    from harness.vm.registry import provider_for_image

    buildable = set(image_store(paths).known())
    for image in dict.fromkeys(images):
        if image not in buildable:
            provider_for_image(image, paths)  # UsageError listing the images that do exist
        image_platform_of(image)


def check_fits(release: Release, image: str, profile: Profile, variants: Sequence[str] = ()) -> None:
    """A darwin tarball on a Linux image is a usage error now, not a broken check later."""
    platform = image_platform_of(image)
    spec = select_profile(profile, platform.os, release.name.parsed, variants).release
    check_release_fits(release, platform, spec)


def check_run(releases: Sequence[Path], images: Sequence[str], profile: Profile, paths: HostPaths,
              variants: Sequence[str] = (), upgrade_from: Path | None = None) -> list[Release]:
    """What ``harness run`` judges before pytest starts: each release (and the one an upgrade
    starts from) whole and safe, every image known, and every release fits every image it meets."""
    checked = [check_release(path, profile, variants) for path in releases]
    if upgrade_from is not None:
        check_release(upgrade_from, profile, variants)
    check_images(images, paths)
    for release in checked:
        for image in images:
            check_fits(release, image, profile, variants)
    return checked


def check_release_readable(path: Path) -> None:
    """What a pytest session given ``--release`` judges at configure time: the file is a release
    and whole to its last byte, unless ``harness run`` already read it (its digest was handed
    over for this very file). Unsafe members stay the static checks' finding there."""
    if handed_over_digest(path) is not None:
        return
    given = judge_release_input(path)
    if given.format != "directory":
        read_release(given.path, nested=False)
