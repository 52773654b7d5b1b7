"""The variants whose defect neither fails the install nor changes an answer really carry it,
seen on this host (the harness's checks must see them in a clean guest)."""

from __future__ import annotations

import glob
import shutil
import stat
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from release_support import (
    BuiltReleases,
    ReleaseHome,
    ServerClient,
    free_port,
    tar_bytes,
    tar_members,
)

from harness.checks.sockets import parse_proc_net

SEEDED = {"temperature": 0.9, "max_tokens": 48}
PROMPTS = ("tell me a short story about a cat", "what is the weather like today?", "hello, how are you?")


def _install(built: BuiltReleases, label: str, home: ReleaseHome, tarball: Path | None = None):  # type: ignore[no-untyped-def]
    result = home.install(built.installer(label), "--tarball", str(tarball or built.tarball(label)))
    assert result.returncode == 0, result.stderr
    return result


def _previous(built: BuiltReleases) -> Path:
    return next((built.out / "previous").glob("refapp-v*.tar.gz"))


def test_reinstall_nests_a_second_tree(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    for _ in range(2):
        _install(built, "good", fresh_home)
    assert not (fresh_home.lib / "lib").exists()
    _install(built, "reinstall_nests", fresh_home)
    assert (fresh_home.lib / "lib" / "server" / "main.py").is_file()


def test_upgrade_overlays_keeps_the_old_module(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    previous = _previous(built)
    fresh_home.install(previous.parent / "install.sh", "--tarball", str(previous))
    assert (fresh_home.lib / "server" / "legacy_prompts.py").is_file()
    _install(built, "good", fresh_home)
    assert not (fresh_home.lib / "server" / "legacy_prompts.py").exists()
    fresh_home.install(previous.parent / "install.sh", "--tarball", str(previous))
    _install(built, "upgrade_overlays", fresh_home)
    assert (fresh_home.lib / "server" / "legacy_prompts.py").is_file()


def test_listens_everywhere_binds_every_interface(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    _install(built, "listens_everywhere", fresh_home)
    port = free_port()
    with fresh_home.serving(port):
        bound = {(s.address, s.port) for s in parse_proc_net(Path("/proc/net/tcp").read_text(), "tcp")}
    assert ("0.0.0.0", port) in bound


def test_world_writable_opens_the_models(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    _install(built, "world_writable", fresh_home)
    assert (fresh_home.lib / "modelfiles").stat().st_mode & stat.S_IWOTH


def test_leaves_temp_forgets_its_scratch_dir(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    before = set(glob.glob("/tmp/refapp-unpack.*"))
    try:
        _install(built, "leaves_temp", fresh_home)
        assert set(glob.glob("/tmp/refapp-unpack.*")) - before
    finally:
        for left in set(glob.glob("/tmp/refapp-unpack.*")) - before:
            shutil.rmtree(left)


def test_build_path_leak_ships_an_editable_pth(built: BuiltReleases, tmp_path: Path) -> None:
    layer = tmp_path / "app.tar.xz"
    layer.write_bytes(tar_bytes(built.tarball("build_path_leak"), "server/stack_export_prod/app-server-linux_x86_64-1.tar.xz"))
    with tarfile.open(layer, "r:xz") as archive:
        pth = archive.extractfile("app-server/lib/python3.11/site-packages/__editable__.refapp_dev.pth")
        assert pth is not None and pth.read() == b"/root/src/refapp/server\n"


def test_runtime_without_lzma_cannot_import_lzma(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    _install(built, "runtime_without_lzma", fresh_home)
    assert not list((fresh_home.lib / "server" / "stack_export_prod" / "cpython3.11").rglob("_lzma*.so"))
    assert "server/_native.cpython-311-x86_64-linux-gnu.so" in tar_members(built.tarball("unloaded_library"))


def _seeded(server: ServerClient, prompt: str, seed: int) -> str:
    return server.text(prompt, seed=seed, **SEEDED)


def test_shared_rng_changes_seeded_answers_under_concurrency(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    _install(built, "shared_rng", fresh_home)
    requests = [(p, s) for p in PROMPTS for s in (7, 8)]
    with fresh_home.serving(free_port()) as server:
        alone = [_seeded(server, p, s) for p, s in requests]
        with ThreadPoolExecutor(len(requests)) as pool:
            together = list(pool.map(lambda r: _seeded(server, *r), requests))
    assert alone == [_seeded_again for _seeded_again in alone]  # sequential answers are reproducible
    assert alone != together


def test_unquoted_paths_fails_in_a_home_with_a_space(built: BuiltReleases, tmp_path: Path, clean_path: Path) -> None:
    spaced = tmp_path / "a home"
    spaced.mkdir()
    home = ReleaseHome(spaced, clean_path)
    assert home.install(built.installer("unquoted_paths"), "--tarball", str(built.tarball("unquoted_paths"))).returncode != 0
    _install(built, "good", home)
