"""One parser reads every release name: real Tiles asset names, and any name of the documented shape."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import build_parser
from harness.commands.run import make_plan
from harness.errors import UsageError
from harness.inspect.archive import read_release
from harness.inspect.diff import diff_releases
from harness.inspect.runner import inspect_release
from harness.profile import load_profile
from harness.release_name import (
    ReleaseNameError,
    Version,
    parse_release_name,
    parse_version,
    version_in_range,
)
from harness.report.facts import ReleaseFacts
from harness.target import TargetSpec, resolve

# Asset names as Tiles publishes them (tiles-contract.md, "Release tarball").
REAL_TILES_ASSETS = [
    ("tiles-v0.4.18-x86_64-linux.tar.gz", "0.4.18", "linux-x86_64", "", False),
    ("tiles-v0.4.1-arm64-darwin.tar.gz", "0.4.1", "darwin-arm64", "", False),
    ("tiles-v0.4.20-canary.1-x86_64-linux.tar.gz", "0.4.20-canary.1", "linux-x86_64", "", True),
    ("tiles-v0.4.16-nightly.1-x86_64-linux.tar.gz", "0.4.16-nightly.1", "linux-x86_64", "", True),
    ("tiles-v0.4.20-nightly.3-arm64-darwin.tar.gz", "0.4.20-nightly.3", "darwin-arm64", "", True),
    ("tiles-v0.4.17-x86_64-linux-cuda.tar.gz", "0.4.17", "linux-x86_64", "cuda", False),
    ("tiles-v0.4.19-x86_64-linux-vulkan.tar.gz", "0.4.19", "linux-x86_64", "vulkan", False),
    ("tiles-v0.5.0-rc.1-x86_64-linux.tar.gz", "0.5.0-rc.1", "linux-x86_64", "", True),
    ("tiles-v0.5.0-rc.1+build.7-x86_64-linux.tar.gz", "0.5.0-rc.1+build.7", "linux-x86_64", "", True),
    ("tiles-v0.4.18+g3f2a1c-x86_64-linux.tar.gz", "0.4.18+g3f2a1c", "linux-x86_64", "", False),
]


@pytest.mark.parametrize(("name", "version", "platform", "backend", "pre"), REAL_TILES_ASSETS)
def test_real_tiles_asset_names(name: str, version: str, platform: str, backend: str, pre: bool) -> None:
    parsed = parse_release_name(name)
    assert (parsed.product, parsed.version, parsed.platform, parsed.backend) == ("tiles", version, platform, backend)
    assert parsed.parsed.is_prerelease is pre


def test_the_hint_does_not_blame_the_user_for_the_original_name() -> None:
    with pytest.raises(ReleaseNameError) as err:
        parse_release_name("tiles_0.4.18_linux.tgz")
    assert "pass the original" not in err.value.hint
    assert "tiles-v0.4.20-canary.1-x86_64-linux.tar.gz" in err.value.hint


def test_prerelease_sorts_before_its_release_and_after_the_previous() -> None:
    order = ["0.4.19", "0.4.20-canary.1", "0.4.20-canary.2", "0.4.20-canary.10", "0.4.20-nightly.1",
             "0.4.20-rc.1", "0.4.20", "0.4.21"]
    versions = [parse_version(v) for v in order]
    assert sorted(versions[3:] + versions[:3]) == versions
    assert parse_version("0.4.18+a") == parse_version("0.4.18+b")  # build metadata does not order


@pytest.mark.parametrize(("version", "spec", "inside"), [
    ("0.4.3", "<0.4.17", True), ("0.4.17", "<0.4.17", False), ("0.4.17-canary.1", "<0.4.17", True),
    ("0.4.20-canary.1", ">=0.4.17", True), ("0.4.18", ">=0.4.0,<0.4.17", False), ("1.0", "", True),
])
def test_version_ranges(version: str, spec: str, inside: bool) -> None:
    assert version_in_range(parse_version(version), spec) is inside


def test_bad_range_is_a_clear_error() -> None:
    with pytest.raises(ReleaseNameError, match="not a comparator"):
        version_in_range(parse_version("1.0"), "~1.0")


ident = st.from_regex(r"[0-9A-Za-z]{1,6}", fullmatch=True)
# A product segment shaped like a version ("my-v2") is ambiguous: the first -v<digit> starts the version.
products = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z][a-z0-9]{0,5}){0,2}", fullmatch=True).filter(
    lambda p: re.search(r"-v\d", p) is None)
releases = st.lists(st.integers(0, 999), min_size=1, max_size=4).map(lambda xs: ".".join(map(str, xs)))
pres = st.lists(ident, min_size=1, max_size=3).map(".".join)
builds = st.lists(ident, min_size=1, max_size=3).map(".".join)


@given(product=products, release=releases, pre=st.none() | pres, build=st.none() | builds,
       arch=st.sampled_from(["x86_64", "arm64", "aarch64", "amd64"]), os_name=st.sampled_from(["linux", "darwin"]),
       backend=st.none() | st.sampled_from(["cuda", "vulkan", "rocm"]))
def test_every_name_of_the_documented_shape_reads_back(product: str, release: str, pre: str | None,
                                                        build: str | None, arch: str, os_name: str,
                                                        backend: str | None) -> None:
    version = release + (f"-{pre}" if pre else "") + (f"+{build}" if build else "")
    name = f"{product}-v{version}-{arch}-{os_name}" + (f"-{backend}" if backend else "") + ".tar.gz"
    parsed = parse_release_name(name)
    assert parsed.product == product
    assert parsed.version == version
    assert parsed.os == os_name
    assert parsed.arch == {"aarch64": "arm64", "amd64": "x86_64"}.get(arch, arch)
    assert parsed.backend == (backend or "")
    assert parsed.parsed.release == tuple(int(p) for p in release.split("."))
    assert parsed.parsed.is_prerelease is bool(pre)
    assert parsed.parsed.build == (build or "")


@given(a=st.tuples(releases, st.none() | pres), b=st.tuples(releases, st.none() | pres))
def test_version_order_is_total_and_consistent(a: tuple[str, str | None], b: tuple[str, str | None]) -> None:
    x, y = (parse_version(r + (f"-{p}" if p else "")) for r, p in (a, b))
    assert (x < y) + (y < x) + (x == y) == 1
    px, py = (v.release + (0,) * (8 - len(v.release)) for v in (x, y))
    if px != py:  # the release numbers decide; a pre-release only orders within one release
        assert (x < y) == (px < py)
    elif x.is_prerelease != y.is_prerelease:
        assert (x < y) == x.is_prerelease


def test_version_str_round_trips() -> None:
    assert str(parse_version("0.4.20-canary.1+b.2")) == "0.4.20-canary.1+b.2"
    assert str(Version((1, 2), ("rc", "1"))) == "1.2-rc.1"


def _tarball(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with tarfile.open(path, "w:gz") as archive:
        data = b"#!/bin/sh\necho tiles\n"
        info = tarfile.TarInfo("./tiles")
        info.size, info.mode = len(data), 0o755
        archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("name", "version", "platform", "backend", "pre"), REAL_TILES_ASSETS)
def test_every_verb_accepts_real_tiles_names(name: str, version: str, platform: str, backend: str, pre: bool,
                                             tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "dist", name)
    # harness run: the plan is made (name, product, backend and platform checked) before any VM; a
    # macOS release meets the default Linux image and is refused for its platform, not its name.
    args = build_parser().parse_args(["run", "--profile", "tiles", "--release", str(tarball),
                                      "--results-dir", str(tmp_path / "results")])
    if platform.startswith("linux"):
        assert make_plan(args).releases == (tarball,)
    else:
        with pytest.raises(UsageError, match=f"built for {platform}, but image linux-debian12"):
            make_plan(args)
    # The profile's platform matching: the target resolves on an image of the tarball's OS.
    image = "linux-debian12" if platform.startswith("linux") else "macos-sequoia-clean"
    target = resolve(TargetSpec(tarball, image, image), load_profile("tiles"))
    assert target.release.name.version == version and target.profile.os == platform.split("-")[0]
    # harness inspect: the name's facts reach the report, and pick the target OS.
    report = inspect_release(tarball, profile="tiles")
    assert report.stats["release_name"] == {"product": "tiles", "version": version, "prerelease": pre,
                                            "platform": platform, "backend": backend}
    assert report.target.startswith("debian" if platform.startswith("linux") else "macos")
    # harness diff: both versions are shown, and going backwards is a warning.
    older = _tarball(tmp_path / "old", name.replace(f"v{version}", "v0.4.0"))
    diff = diff_releases(read_release(older), read_release(tarball))
    assert (diff.old_version, diff.new_version) == ("0.4.0", version)
    assert not [f for f in diff.findings if f.check == "diff.version_went_back"]
    backwards = diff_releases(read_release(tarball), read_release(older))
    assert [f.check for f in backwards.findings] == ["diff.version_went_back"]
    # harness report: the sign-off says when the release is a pre-release.
    assert ReleaseFacts(tarball=name, version=version).version_label == version + (" (pre-release)" if pre else "")
