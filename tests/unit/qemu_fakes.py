"""A tiny recipe and a fake "built" image for unit tests of the image store and QEMU provider.

The fake build has a real (empty, 16 MiB) qcow2 disk so overlays can be created against it, but
its kernel is garbage: nothing here can boot, which is the point of a unit test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.images import image_store
from harness.images.recipe import recipe_hash
from harness.images.store import ImageStore
from tests.needs import unavailable

TINY_RECIPE = """
[image]
description = "unit-test recipe"
suite = "bookworm"
arch = "amd64"
user = "tester"
disk_size_mb = 64
kernel_cmdline = "root=/dev/vda console=ttyS0"
packages = ["openssh-server"]
forbidden_packages = ["python*"]
"""


@dataclass(frozen=True)
class FakeImages:
    paths: HostPaths
    store: ImageStore
    recipes_root: Path

    def recipe_dir(self, variant: str = "tiny") -> Path:
        return self.recipes_root / "linux" / variant


def write_recipe(recipes_root: Path, variant: str = "tiny", text: str = TINY_RECIPE) -> Path:
    directory = recipes_root / "linux" / variant
    (directory / "rootfs" / "etc").mkdir(parents=True, exist_ok=True)
    (directory / "recipe.toml").write_text(text)
    (directory / "configure.sh").write_text("#!/bin/sh\ntrue\n")
    (directory / "rootfs" / "etc" / "hostname").write_text("tiny\n")
    return directory


def fake_build(store: ImageStore, name: str, content_hash: str, built_at: str = "2025-01-01T00:00:00+00:00") -> Path:
    """A build directory that looks finished: manifest, a real qcow2, placeholder boot files."""
    directory = store.paths.images / name / content_hash
    directory.mkdir(parents=True)
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        unavailable("qemu-img is not installed: apt-get install qemu-utils")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(directory / "image.qcow2"), "16M"], check=True)
    for placeholder in ("vmlinuz", "initrd.img", "id_ed25519"):
        (directory / placeholder).write_bytes(b"not a real " + placeholder.encode())
    manifest = {"name": name, "content_hash": content_hash, "built_at": built_at, "user": "tester",
                "kernel_cmdline": "root=/dev/vda console=ttyS0"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture
def fake_images(tmp_path: Path) -> FakeImages:
    paths = HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    recipes_root = tmp_path / "vm_images"
    write_recipe(recipes_root)
    return FakeImages(paths=paths, store=image_store(paths, recipes_root), recipes_root=recipes_root)


@pytest.fixture
def built_tiny(fake_images: FakeImages) -> FakeImages:
    """``linux-tiny`` with a current build in the cache."""
    fake_build(fake_images.store, "linux-tiny", recipe_hash(fake_images.recipe_dir()))
    return fake_images
