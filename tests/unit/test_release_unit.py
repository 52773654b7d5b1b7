"""The release tarball is checked on the host before any VM boots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness.profile import ReleaseSpec
from harness.release import (
    ReleaseError,
    check_release_fits,
    image_platform,
    load_release,
    parse_release_name,
)

SPEC = ReleaseSpec(product="tiles", backends=("cuda",), platforms=("linux-x86_64", "darwin-arm64"))


def make(tmp_path: Path, name: str, content: bytes = b"tarball bytes", checksums: str | None = None) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    if checksums is not None:
        (tmp_path / "checksums.txt").write_text(checksums)
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tiles-v0.4.18-x86_64-linux.tar.gz", ("tiles", "0.4.18", "x86_64", "linux", "")),
        ("tiles-v0.4.1-arm64-darwin.tar.gz", ("tiles", "0.4.1", "arm64", "darwin", "")),
        ("tiles-v0.4.17-x86_64-linux-cuda.tar.gz", ("tiles", "0.4.17", "x86_64", "linux", "cuda")),
        ("refapp-v1.2.0rc1-aarch64-linux.tar.gz", ("refapp", "1.2.0rc1", "arm64", "linux", "")),
        ("my-app-v2.0-x86_64-linux.tar.gz", ("my-app", "2.0", "x86_64", "linux", "")),
    ],
)
def test_parse_name(name: str, expected: tuple[str, ...]) -> None:
    parsed = parse_release_name(name)
    assert (parsed.product, parsed.version, parsed.arch, parsed.os, parsed.backend) == expected


@pytest.mark.parametrize("name", ["tiles.tar.gz", "tiles-0.4.1-x86_64-linux.tar.gz", "tiles-v0.4.1-x86_64-windows.tar.gz",
                                  "tiles-v0.4.1-x86_64-linux.zip"])
def test_unparsable_names(name: str) -> None:
    with pytest.raises(ReleaseError, match="cannot read product"):
        parse_release_name(name)


def test_missing_tarball_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError) as err:
        load_release(tmp_path / "tiles-v0.4.1-x86_64-linux.tar.gz", SPEC)
    assert "does not exist" in str(err.value) and "--release" in err.value.hint


def test_directory_is_not_a_release(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="not a file"):
        load_release(tmp_path, SPEC)


def test_checksum_verified(tmp_path: Path) -> None:
    content = b"abc" * 1000
    digest = hashlib.sha256(content).hexdigest()
    path = make(tmp_path, "tiles-v0.4.1-x86_64-linux.tar.gz", content,
                f"{'0' * 64}  other.tar.gz\n{digest}  tiles-v0.4.1-x86_64-linux.tar.gz\n")
    release = load_release(path, SPEC)
    assert release.sha256 == digest
    assert release.checksum_source == tmp_path / "checksums.txt"
    assert release.size == 3000
    assert release.name.platform == "linux-x86_64"


def test_checksum_mismatch_is_a_finding(tmp_path: Path) -> None:
    path = make(tmp_path, "tiles-v0.4.1-x86_64-linux.tar.gz", b"truncated",
                f"{'a' * 64} *tiles-v0.4.1-x86_64-linux.tar.gz\n")
    release = load_release(path, SPEC)
    assert not release.checksum.verified and release.checksum_source is None
    assert "published checksums.txt says " + "a" * 64 in release.checksum.problem
    assert "stale" in release.checksum.problem


def test_checksum_file_not_listing_tarball(tmp_path: Path) -> None:
    path = make(tmp_path, "tiles-v0.4.1-x86_64-linux.tar.gz", checksums=f"{'a' * 64}  other.tar.gz\n")
    assert "does not list" in load_release(path, SPEC).checksum.problem


def test_malformed_checksum_line(tmp_path: Path) -> None:
    path = make(tmp_path, "tiles-v0.4.1-x86_64-linux.tar.gz", checksums="not a checksum\n")
    assert "checksums.txt:1: not a sha256sum line" in load_release(path, SPEC).checksum.problem


def test_no_checksum_file_is_fine(tmp_path: Path) -> None:
    release = load_release(make(tmp_path, "tiles-v0.4.1-arm64-darwin.tar.gz"), SPEC)
    assert release.checksum_source is None and release.checksum.file is None and not release.checksum.problem


def test_wrong_product_names_profile(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError) as err:
        load_release(make(tmp_path, "refapp-v1.0-x86_64-linux.tar.gz"), SPEC)
    assert "'refapp' release but the profile expects 'tiles'" in str(err.value)
    assert "--profile" in err.value.hint


def test_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="backend suffix 'rocm'"):
        load_release(make(tmp_path, "tiles-v0.4.18-x86_64-linux-rocm.tar.gz"), SPEC)


def test_platform_must_match_image(tmp_path: Path) -> None:
    mac = load_release(make(tmp_path, "tiles-v0.4.1-arm64-darwin.tar.gz"), SPEC)
    linux = image_platform("linux-debian12", "x86_64")
    with pytest.raises(ReleaseError) as err:
        check_release_fits(mac, linux, SPEC)
    assert "built for darwin-arm64, but image linux-debian12 is linux-x86_64" in str(err.value)
    check_release_fits(mac, image_platform("macos-sequoia-vanilla", "arm64"), SPEC)


def test_arch_mismatch(tmp_path: Path) -> None:
    arm = load_release(make(tmp_path, "tiles-v0.4.1-aarch64-linux.tar.gz"), ReleaseSpec("tiles", platforms=("linux-arm64",)))
    with pytest.raises(ReleaseError, match="linux-arm64, but image"):
        check_release_fits(arm, image_platform("linux-debian12", "x86_64"), SPEC)


def test_platform_not_in_profile(tmp_path: Path) -> None:
    spec = ReleaseSpec("tiles", platforms=("darwin-arm64",))
    release = load_release(make(tmp_path, "tiles-v0.4.1-x86_64-linux.tar.gz"), spec)
    with pytest.raises(ReleaseError, match="does not list linux-x86_64"):
        check_release_fits(release, image_platform("linux-debian12", "amd64"), spec)


def test_unknown_image_family() -> None:
    with pytest.raises(ReleaseError, match="cannot tell the OS"):
        image_platform("windows-11", "x86_64")

def test_pin_release_survives_a_rebuild(tmp_path: Path) -> None:
    from harness.release import pin_release

    content = b"first build"
    digest = hashlib.sha256(content).hexdigest()
    (tmp_path / "dist").mkdir()
    path = make(tmp_path / "dist", "tiles-v0.4.1-x86_64-linux.tar.gz", content,
                f"{digest}  tiles-v0.4.1-x86_64-linux.tar.gz\n")
    (tmp_path / "dist" / "install.sh").write_text("echo install\n")
    release = load_release(path, SPEC)
    pinned = pin_release(release, tmp_path / "pin", ("install.sh",))
    # The build replaces the files (new inode), as build tools do.
    path.unlink()
    path.write_bytes(b"second build, different")
    assert pinned.path.read_bytes() == content and pinned.origin == path
    assert (tmp_path / "pin" / "install.sh").is_file() and pinned.checksum.file == tmp_path / "pin" / "checksums.txt"
    assert pinned.checksum.verified and pinned.id == release.id
    with pytest.raises(ReleaseError, match="changed while the run was starting"):
        pin_release(release, tmp_path / "pin2")
