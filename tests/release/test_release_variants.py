"""Each broken variant differs from the good release only where variants.toml says, and really has its defect."""

from __future__ import annotations

import hashlib
import tarfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from release_support import (
    RELEASE_DIR,
    TARBALL_NAME,
    BuiltReleases,
    ReleaseHome,
    ServerClient,
    elf_dynamic,
    free_port,
    snapshot,
    streamed_text,
    tar_bytes,
    tar_members,
)

TABLE = tomllib.loads((RELEASE_DIR / "variants.toml").read_text())["variant"]
VARIANTS = {row["name"]: row for row in TABLE}
POEM = "write a poem about cats"


def _member_digests(tarball: Path) -> dict[str, str]:
    with tarfile.open(tarball, "r:gz") as archive:
        return {m.name: hashlib.sha256(archive.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                for m in archive.getmembers() if m.isfile()}


def _changed(built: BuiltReleases, label: str) -> set[str]:
    good, bad = _member_digests(built.tarball()), _member_digests(built.tarball(label))
    changed = {name for name in good.keys() | bad.keys() if good.get(name) != bad.get(name)}
    for beside in ("install.sh", "checksums.txt"):
        if beside == "checksums.txt":
            expected = f"{hashlib.sha256(built.tarball(label).read_bytes()).hexdigest()}  {TARBALL_NAME}\n"
            if (built.directory(label) / beside).read_text() != expected:
                changed.add(beside)
        elif built.installer(label).read_bytes() != built.installer().read_bytes():
            changed.add(beside)
    return changed


def test_table_covers_the_built_variants(built: BuiltReleases) -> None:
    releases = built.manifest["releases"]
    assert isinstance(releases, dict)
    assert set(VARIANTS) == set(releases) - {"good", "previous"}  # previous: what upgrades start from
    assert len(VARIANTS) >= 6
    for row in TABLE:
        assert row["caught_by"] and row["stage"] in {"static", "install", "serve", "completions"}


@pytest.mark.parametrize("label", sorted(VARIANTS))
def test_variant_changes_only_what_the_table_says(built: BuiltReleases, label: str) -> None:
    assert _changed(built, label) == set(VARIANTS[label]["changes"])


def _install(built: BuiltReleases, label: str, home: ReleaseHome):  # type: ignore[no-untyped-def]
    return home.install(built.installer(label), "--tarball", str(built.tarball(label)))


@contextmanager
def _serving_variant(built: BuiltReleases, label: str, home: ReleaseHome) -> Iterator[ServerClient]:
    result = _install(built, label, home)
    assert result.returncode == 0, result.stderr
    with home.serving(free_port()) as client:
        yield client


def test_installer_download_reaches_for_the_network(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    assert "updates.refapp.invalid" in built.installer("installer_download").read_text()
    result = _install(built, "installer_download", fresh_home)
    assert result.returncode != 0
    assert "fetching the model manifest from http://updates.refapp.invalid/" in result.stdout
    assert "could not fetch the model manifest" in result.stderr
    assert snapshot(fresh_home.home) == set()


def test_foreign_library_needs_a_library_nobody_ships(built: BuiltReleases, tmp_path: Path) -> None:
    name = "server/_native.cpython-311-x86_64-linux-gnu.so"
    extension = tmp_path / "native.so"
    extension.write_bytes(tar_bytes(built.tarball("foreign_library"), name))
    needed, _ = elf_dynamic(extension)
    assert "libyaml-0.so.2" in needed
    assert not [m for m in tar_members(built.tarball("foreign_library")) if "libyaml" in m]
    assert "from . import _native" in tar_bytes(built.tarball("foreign_library"), "server/main.py").decode()


def test_ignores_temperature_is_not_deterministic(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    with _serving_variant(built, "ignores_temperature", fresh_home) as server:
        greedy = {server.text(POEM, temperature=0, max_tokens=32) for _ in range(4)}
        seeded = {server.text(POEM, temperature=0.9, seed=7, max_tokens=32) for _ in range(4)}
    assert len(greedy) > 1, "temperature 0 gave identical text: the defect is missing"
    assert len(seeded) > 1, "a fixed seed gave identical text: the defect is missing"


def test_duplicate_app_layer_ships_two_archives_for_one_layer(built: BuiltReleases, tmp_path: Path) -> None:
    members = tar_members(built.tarball("duplicate_app_layer"))
    archives = sorted(n for n in members if n.startswith("server/stack_export_prod/app-server-") and n.endswith(".tar.xz"))
    assert len(archives) == 2
    for name in archives:
        path = tmp_path / Path(name).name
        path.write_bytes(tar_bytes(built.tarball("duplicate_app_layer"), name))
        with tarfile.open(path, "r:xz") as layer:
            assert {m.name.split("/")[0] for m in layer.getmembers()} == {"app-server"}


def test_system_python_shebang_fails_without_a_system_python(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    script = tar_bytes(built.tarball("system_python_shebang"), "server/tools/warmup.py").decode()
    assert script.startswith("#!/usr/bin/env python3\n")
    result = _install(built, "system_python_shebang", fresh_home)
    assert result.returncode != 0
    assert "python3" in result.stderr and "warm-up of the server sources failed" in result.stderr
    assert snapshot(fresh_home.home) == set()


def test_unsafe_member_escapes_the_unpack_directory(built: BuiltReleases, tmp_path: Path) -> None:
    assert "../.refapp-escape" in tar_members(built.tarball("unsafe_member"))
    with tarfile.open(built.tarball("unsafe_member"), "r:gz") as archive, pytest.raises(tarfile.OutsideDestinationError):
        archive.extractall(tmp_path / "unpack", filter="data")


def test_stray_writes_lands_in_home(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    with _serving_variant(built, "stray_writes", fresh_home):
        assert (fresh_home.home / ".refapp_history").is_file()


def test_stream_mismatch_streams_different_text(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    with _serving_variant(built, "stream_mismatch", fresh_home) as server:
        plain = server.text("how do I install it?", temperature=0, max_tokens=32)
        streamed = streamed_text(server.stream("how do I install it?", temperature=0, max_tokens=32))
    assert " " in plain and streamed != plain


def test_stale_checksum_is_refused(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    listed = (built.directory("stale_checksum") / "checksums.txt").read_text().split()[0]
    assert listed != hashlib.sha256(built.tarball("stale_checksum").read_bytes()).hexdigest()
    result = _install(built, "stale_checksum", fresh_home)
    assert result.returncode != 0 and "sha256 mismatch" in result.stderr
    assert snapshot(fresh_home.home) == set()
