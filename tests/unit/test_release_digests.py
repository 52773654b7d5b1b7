"""A run hashes each release tarball once: `harness run`'s preflight reads it whole and hands its
digest to the child pytest, which trusts it while the file keeps its identity, and pins the
tarball by a hard link that needs no second hash. A file rebuilt meanwhile is hashed again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from harness import release as release_module
from harness.hashing import sha256_file
from harness.preflight import check_release
from harness.profile import load_profile
from harness.release import DIGESTS_ENV, digest_handover, handed_over_digest
from harness.target import TargetSpec, resolve
from tests.unit.release_files import small_release

NAME = "refapp-v0.1.0-x86_64-linux.tar.gz"
IMAGE = "linux-debian12"


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Counter[Path]:
    """How many times each file was hashed with sha256_file."""
    counts: Counter[Path] = Counter()

    def counting(path: Path) -> str:
        counts[Path(path)] += 1
        return sha256_file(path)

    monkeypatch.setattr(release_module, "sha256_file", counting)
    return counts


def child_target(tarball: Path, tmp_path: Path, environ: dict[str, str]) -> str:
    """What the child pytest's ``target`` fixture does with the tarball: check it and pin it."""
    spec = TargetSpec(tarball, IMAGE, IMAGE)
    found = resolve(spec, load_profile("reference"), pin_dir=tmp_path / "pin",
                    known=handed_over_digest(tarball, environ))
    return found.release.sha256


def test_a_run_hashes_the_tarball_in_its_preflight_only(tmp_path: Path, hashed: Counter[Path]) -> None:
    tarball = small_release(tmp_path / "dist" / NAME)
    checked = check_release(tarball, load_profile("reference"))  # the parent: one read, its digest
    environ = {DIGESTS_ENV: digest_handover([checked])}
    assert child_target(tarball, tmp_path, environ) == checked.sha256 == sha256_file(tarball)
    assert hashed[tarball] + hashed[tmp_path / "pin" / NAME] == 0  # was 2: the load and the pin


def test_without_a_handover_the_child_hashes_once(tmp_path: Path, hashed: Counter[Path]) -> None:
    tarball = small_release(tmp_path / "dist" / NAME)
    assert child_target(tarball, tmp_path, {}) == sha256_file(tarball)
    assert hashed[tarball] + hashed[tmp_path / "pin" / NAME] == 1  # the pin is a link to the file hashed


def test_a_tarball_rebuilt_after_the_preflight_is_hashed_again(tmp_path: Path, hashed: Counter[Path]) -> None:
    tarball = small_release(tmp_path / "dist" / NAME)
    checked = check_release(tarball, load_profile("reference"))
    environ = {DIGESTS_ENV: digest_handover([checked])}
    tarball.unlink()
    small_release(tarball, {"install.sh": b"#!/bin/sh\necho rebuilt\n"})  # a new file in its place
    assert handed_over_digest(tarball, environ) is None
    assert child_target(tarball, tmp_path, environ) == sha256_file(tarball) != checked.sha256
    assert hashed[tarball] == 1


def test_a_pinned_copy_on_another_file_system_is_hashed(tmp_path: Path, hashed: Counter[Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(source: Path, dest: Path) -> None:
        raise OSError("cross-device link")

    monkeypatch.setattr(release_module.os, "link", no_links)
    tarball = small_release(tmp_path / "dist" / NAME)
    checked = check_release(tarball, load_profile("reference"))
    child_target(tarball, tmp_path, {DIGESTS_ENV: digest_handover([checked])})
    assert hashed[tmp_path / "pin" / NAME] == 1  # a copy is not the file measured: hashed to compare


def test_a_handover_that_cannot_be_read_is_ignored(tmp_path: Path) -> None:
    tarball = small_release(tmp_path / NAME)
    incomplete = json.dumps({str(tarball.resolve()): {"sha256": "x"}})
    for value in ("not json", "[]", incomplete, ""):
        assert handed_over_digest(tarball, {DIGESTS_ENV: value}) is None
