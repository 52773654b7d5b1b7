"""The image catalogue and build pipeline pieces that run without root, network or a VM."""

# ruff: noqa: F811  (pytest fixtures imported from qemu_fakes are parameters here)
from __future__ import annotations

import os
from pathlib import Path

import paramiko
import pytest
from filelock import FileLock, Timeout
from qemu_fakes import FakeImages, built_tiny, fake_build, fake_images, write_recipe  # noqa: F401  (fixtures)

from harness import cli
from harness.errors import InfrastructureError, MissingToolError, UsageError
from harness.host import tools as host_tools
from harness.host.run_label import VMName
from harness.images import build as image_build
from harness.images.build import (
    BuildLog,
    apt_mirror_for,
    choose_mirror,
    forbidden_files,
    forbidden_packages,
    make_login_key,
    remove_build_dir,
)
from harness.images.recipe import (
    Recipe,
    default_recipes_root,
    discover_recipes,
    recipe_hash,
)
from harness.vm.qemu.provider import QemuProvider

REAL_RECIPES = Path(__file__).resolve().parents[2] / "harness" / "vm_images"


# ---------------------------------------------------------------- recipes and hashing


def test_real_recipe_is_found_and_promises_no_python() -> None:
    assert "linux-debian12" in discover_recipes(REAL_RECIPES)
    recipe = Recipe.load("linux-debian12", REAL_RECIPES / "linux" / "debian12")
    assert recipe.user == "tester"
    assert {"openssh-server", "linux-image-amd64", "tar", "xz-utils"} <= set(recipe.packages)
    assert not forbidden_packages(recipe.packages, recipe.forbidden_packages)
    assert "curl" not in recipe.packages
    assert {"virtio_blk", "virtio_net"} <= set(recipe.initrd_must_contain)
    assert "console=ttyS0" in recipe.kernel_cmdline and "root=/dev/vda" in recipe.kernel_cmdline


def test_default_recipes_root_is_the_checkout_and_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HARNESS_VM_IMAGES", raising=False)
    assert default_recipes_root() == REAL_RECIPES
    monkeypatch.setenv("HARNESS_VM_IMAGES", str(tmp_path))
    assert default_recipes_root() == tmp_path


def test_hash_is_stable_and_follows_content_and_exec_bit(tmp_path: Path) -> None:
    directory = write_recipe(tmp_path)
    first = recipe_hash(directory)
    assert recipe_hash(directory) == first
    assert recipe_hash(write_recipe(tmp_path / "copy")) == first  # location does not matter

    (directory / "configure.sh").chmod(0o755)
    executable = recipe_hash(directory)
    assert executable != first

    (directory / "rootfs" / "etc" / "hostname").write_text("other\n")
    assert recipe_hash(directory) != executable


def test_hash_ignores_documentation(tmp_path: Path) -> None:
    directory = write_recipe(tmp_path)
    before = recipe_hash(directory)
    (directory / "README.md").write_text("why the recipe is the way it is\n")
    assert recipe_hash(directory) == before


def test_malformed_recipe_is_a_usage_error(tmp_path: Path) -> None:
    directory = write_recipe(tmp_path, text="[image]\nsuite = 'bookworm'\n")
    with pytest.raises(UsageError, match="malformed"):
        Recipe.load("linux-tiny", directory)


# ---------------------------------------------------------------- the store


def test_unknown_image_lists_known_ones(fake_images: FakeImages) -> None:
    with pytest.raises(UsageError) as caught:
        fake_images.store.recipe("linux-nope")
    assert "unknown image 'linux-nope'" in caught.value.message
    assert "linux-tiny" in caught.value.hint


def test_current_image_not_built_says_how_to_build(fake_images: FakeImages) -> None:
    with pytest.raises(UsageError) as caught:
        fake_images.store.current("linux-tiny")
    assert "harness images build linux-tiny" in caught.value.hint


def test_current_build_is_found_and_described(built_tiny: FakeImages) -> None:
    image = built_tiny.store.current("linux-tiny")
    assert image.content_hash == recipe_hash(built_tiny.recipe_dir())
    assert image.user == "tester"
    assert image.disk.name == "image.qcow2" and image.disk.exists()
    assert image.size_bytes > 0


def test_ensure_reuses_a_current_build_without_building(built_tiny: FakeImages, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_build(*args: object) -> None:
        raise AssertionError("a current build must not be rebuilt")

    monkeypatch.setattr(built_tiny.store, "builder", must_not_build)
    assert built_tiny.store.ensure("linux-tiny").content_hash == recipe_hash(built_tiny.recipe_dir())


def test_ensure_builds_under_the_lock_when_the_recipe_changed(built_tiny: FakeImages, monkeypatch: pytest.MonkeyPatch) -> None:
    (built_tiny.recipe_dir() / "configure.sh").write_text("#!/bin/sh\necho changed\n")
    calls: list[str] = []

    def fake_builder(recipe: Recipe, image_root: Path, progress: object) -> object:
        calls.append(recipe.content_hash)
        with pytest.raises(Timeout):  # builders are serialised: a second one has to wait
            FileLock(str(image_root / ".build.lock")).acquire(timeout=0)
        fake_build(built_tiny.store, recipe.name, recipe.content_hash)
        return built_tiny.store.find(recipe.name, recipe.content_hash)

    monkeypatch.setattr(built_tiny.store, "builder", fake_builder)
    image = built_tiny.store.ensure("linux-tiny")
    assert calls == [image.content_hash]


def test_forced_rebuild_refuses_while_vms_use_the_image(built_tiny: FakeImages, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_build(*args: object) -> None:
        raise AssertionError("an image in use must not be rebuilt in place")

    monkeypatch.setattr(built_tiny.store, "builder", must_not_build)
    current = built_tiny.store.current("linux-tiny")
    with pytest.raises(UsageError, match="VMs still use it"):
        built_tiny.store.ensure("linux-tiny", force=True, in_use=lambda: {current.disk})
    assert current.disk.exists()


def test_listing_marks_current_and_stale(built_tiny: FakeImages) -> None:
    fake_build(built_tiny.store, "linux-tiny", "0123456789abcdef", built_at="2024-01-01T00:00:00+00:00")
    (built_tiny.paths.images / "linux-tiny" / ".build-half-done").mkdir()  # never listed
    rows = {row.image.content_hash: row.current for row in built_tiny.store.listings()}
    assert rows == {recipe_hash(built_tiny.recipe_dir()): True, "0123456789abcdef": False}


def test_prune_spares_current_and_in_use_builds(built_tiny: FakeImages) -> None:
    stale = fake_build(built_tiny.store, "linux-tiny", "aaaaaaaaaaaaaaaa")
    in_use = fake_build(built_tiny.store, "linux-tiny", "bbbbbbbbbbbbbbbb")
    removed = built_tiny.store.prune(in_use={in_use / "image.qcow2"})
    assert [image.directory for image in removed] == [stale]
    assert not stale.exists() and in_use.exists()
    assert built_tiny.store.current("linux-tiny").directory.exists()


# ---------------------------------------------------------------- build pieces


def test_mirror_from_one_line_and_deb822_sources(tmp_path: Path) -> None:
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"
                        "deb http://security.example/debian-security bookworm-security main\n")
    assert apt_mirror_for("bookworm", [one_line]) == "http://mirror.example/debian"
    assert apt_mirror_for("trixie", [one_line]) is None

    directory = tmp_path / "sources.list.d"
    directory.mkdir()
    (directory / "debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://deb822.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert apt_mirror_for("bookworm", [directory]) == "http://deb822.example/debian"


def test_mirror_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_mirror("bookworm", {"HARNESS_DEBIAN_MIRROR": "http://local/debian"}) == "http://local/debian"
    monkeypatch.setattr(image_build, "apt_mirror_for", lambda suite: None)
    assert choose_mirror("bookworm", {}) == image_build.DEFAULT_MIRROR


def test_python_is_detected_by_package_and_by_file(tmp_path: Path) -> None:
    assert forbidden_packages(["bash", "python3.11-minimal", "libpython3.11", "perl-base"],
                              ["python*", "libpython*"]) == ["python3.11-minimal", "libpython3.11"]
    (tmp_path / "usr" / "local" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "local" / "bin" / "python3").write_text("")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "python").write_text("")  # pseudo file systems are not looked at
    assert forbidden_files(tmp_path, ["python*"]) == ["/usr/local/bin/python3"]


def test_failing_step_names_itself_and_shows_the_tail(tmp_path: Path) -> None:
    log = BuildLog(tmp_path / "build.log", progress=lambda message: None)
    script = "for i in $(seq 1 100); do echo line$i; done; echo 'E: no such package' >&2; exit 3"
    with pytest.raises(InfrastructureError) as caught:
        log.run("debootstrap", ["sh", "-c", script])
    error = caught.value
    assert "'debootstrap'" in error.message and "status 3" in error.message
    assert "E: no such package" in error.detail and "line100" in error.detail
    assert "line1\n" not in error.detail  # a tail, not the whole output
    assert "E: no such package" in (tmp_path / "build.log").read_text()


def test_step_timeout_is_reported(tmp_path: Path) -> None:
    log = BuildLog(tmp_path / "build.log", progress=lambda message: None)
    with pytest.raises(InfrastructureError, match="timed out"):
        log.run("mkfs.ext4", ["sleep", "5"], timeout_s=0.2)


def test_failed_build_leaves_no_work_dir_and_keeps_the_log(fake_images: FakeImages, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = {"debootstrap": "false", "chroot": "chroot", "mkfs.ext4": "mkfs.ext4", "qemu-img": "qemu-img"}
    monkeypatch.setattr(image_build, "check_can_build", lambda: tools)
    monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    with pytest.raises(InfrastructureError, match="image build step 'debootstrap'"):
        fake_images.store.ensure("linux-tiny")
    image_root = fake_images.paths.images / "linux-tiny"
    assert list(image_root.glob(".build-*")) == []
    assert "=== debootstrap: false --variant=minbase" in (image_root / "last-failed-build.log").read_text()
    assert fake_images.store.listings() == []


def test_missing_tool_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_tools.shutil, "which", lambda *args, **kwargs: None)
    for program, package in (("debootstrap", "debootstrap"), ("qemu-img", "qemu-utils"),
                             ("mkfs.ext4", "e2fsprogs"), ("qemu-system-x86_64", "qemu-system-x86")):
        with pytest.raises(MissingToolError) as caught:
            host_tools.require_tool(program, "build a base image")
        assert f"apt-get install -y {package}" in caught.value.hint


def test_build_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="needs root"):
        image_build.check_can_build()


def test_login_key_is_loadable_by_paramiko(tmp_path: Path) -> None:
    public = make_login_key(tmp_path / "id_ed25519")
    key = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "id_ed25519"))
    assert public.startswith("ssh-ed25519 ") and key.get_base64() in public
    assert (tmp_path / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "id_ed25519.pub").read_text().strip() == public


def test_remove_build_dir_removes_plain_trees(tmp_path: Path) -> None:
    tree = tmp_path / ".build-x" / "rootfs" / "etc"
    tree.mkdir(parents=True)
    (tree / "hostname").write_text("x")
    remove_build_dir(tmp_path / ".build-x")
    assert not (tmp_path / ".build-x").exists()
    remove_build_dir(tmp_path / ".build-x")  # already gone: fine


# ---------------------------------------------------------------- the command


@pytest.fixture
def cli_env(fake_images: FakeImages, monkeypatch: pytest.MonkeyPatch) -> FakeImages:
    """The ``harness`` command pointed at the fake cache, state and recipes."""
    monkeypatch.setenv("HARNESS_CACHE", str(fake_images.paths.cache))
    monkeypatch.setenv("HARNESS_STATE", str(fake_images.paths.state))
    monkeypatch.setenv("HARNESS_VM_IMAGES", str(fake_images.recipes_root))
    return fake_images


def test_cli_unknown_image_exits_2_listing_known(cli_env: FakeImages, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["images", "build", "linux-nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown image 'linux-nope'" in err and "linux-tiny" in err


def test_cli_list_shows_current_and_stale(cli_env: FakeImages, capsys: pytest.CaptureFixture[str]) -> None:
    fake_build(cli_env.store, "linux-tiny", recipe_hash(cli_env.recipe_dir()))
    fake_build(cli_env.store, "linux-tiny", "0123456789abcdef")
    assert cli.main(["images", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "DIGEST", "SIZE"]
    statuses = {line.split()[1]: line.split(maxsplit=5)[-1] for line in lines[1:]}
    assert statuses == {recipe_hash(cli_env.recipe_dir()): "current", "0123456789abcdef": "stale"}


def test_cli_list_marks_builds_that_vms_use(cli_env: FakeImages, capsys: pytest.CaptureFixture[str]) -> None:
    fake_build(cli_env.store, "linux-tiny", recipe_hash(cli_env.recipe_dir()))
    QemuProvider(cli_env.paths, cli_env.store).clone("linux-tiny", VMName.new("unit"))
    assert cli.main(["images", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("current, in use by VMs")


def test_cli_list_with_nothing_built_says_what_to_do(cli_env: FakeImages, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["images", "list"]) == 0
    out = capsys.readouterr().out
    assert "no images built" in out and "harness images build" in out and "linux-tiny" in out
