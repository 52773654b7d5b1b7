"""The cache of built base images (``HostPaths.images/<name>/<hash>/``): which build of a recipe is
current, building a missing one (one builder at a time, under a file lock) and pruning stale ones.

The store does not know how an image is built: the builder is handed in (``harness.images.image_store``
wires in :func:`harness.images.build.build_image`), so looking images up never pulls in the build
pipeline and tests can hand in their own.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from harness.config import HostPaths
from harness.errors import UsageError
from harness.images.recipe import Recipe, default_recipes_root, discover_recipes

MANIFEST_FILE = "manifest.json"
BUILD_LOCK_TIMEOUT_S = 45 * 60.0  # a cold build takes a few minutes; waiting longer means a hang

Progress = Callable[[str], None]
# Builds one recipe into <image root>/<content hash>/ and returns the finished build.
Builder = Callable[[Recipe, Path, Progress], "BuiltImage"]


@dataclass(frozen=True)
class BuiltImage:
    """A finished build in the cache; its files are never modified after the build."""

    name: str
    content_hash: str
    directory: Path
    manifest: dict[str, object]

    @property
    def disk(self) -> Path:
        return self.directory / "image.qcow2"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def private_key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def user(self) -> str:
        return str(self.manifest["user"])

    @property
    def kernel_cmdline(self) -> str:
        return str(self.manifest["kernel_cmdline"])

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    @classmethod
    def load(cls, directory: Path) -> BuiltImage | None:
        """The build in ``directory``, or None when it is incomplete or not a build at all."""
        try:
            manifest = json.loads((directory / MANIFEST_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(
            name=str(manifest.get("name", directory.parent.name)),
            content_hash=directory.name,
            directory=directory,
            manifest=manifest,
        )


@dataclass(frozen=True)
class ImageListing:
    """One line of ``harness images list``."""

    image: BuiltImage
    current: bool

    @property
    def built_at(self) -> str:
        return str(self.image.manifest.get("built_at", "?"))


class ImageStore:
    """Recipes on one side, cached builds on the other; answers "which image do I boot?"."""

    def __init__(self, paths: HostPaths, recipes_root: Path | None = None, *, builder: Builder) -> None:
        self.paths = paths
        self.builder = builder
        self.recipes_root = recipes_root or default_recipes_root()

    def known(self) -> list[str]:
        return sorted(discover_recipes(self.recipes_root))

    def recipe(self, name: str) -> Recipe:
        recipes = discover_recipes(self.recipes_root)
        if name not in recipes:
            known = ", ".join(sorted(recipes)) or f"none (no recipes under {self.recipes_root})"
            raise UsageError(f"unknown image '{name}'", hint=f"known images: {known}")
        return Recipe.load(name, recipes[name])

    def image_root(self, name: str) -> Path:
        return self.paths.images / name

    def find(self, name: str, content_hash: str) -> BuiltImage | None:
        return BuiltImage.load(self.image_root(name) / content_hash)

    def current(self, name: str) -> BuiltImage:
        """The build matching the recipe as it is now; UsageError if it was never built."""
        recipe = self.recipe(name)
        built = self.find(name, recipe.content_hash)
        if built is None:
            raise UsageError(
                f"image '{name}' (recipe hash {recipe.content_hash}) is not built yet",
                hint=f"build it once: harness images build {name}",
            )
        return built

    def build_lock(self, name: str) -> FileLock:
        root = self.image_root(name)
        root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(root / ".build.lock"), timeout=BUILD_LOCK_TIMEOUT_S)

    def ensure(self, name: str, force: bool = False, progress: Progress | None = None,
               in_use: Callable[[], set[Path]] | None = None) -> BuiltImage:
        """The current build of ``name``, building it first if needed (one builder at a time).

        ``force`` rebuilds the current hash in place, so it refuses while a VM (whose overlay reads
        that base disk) still exists: ``in_use`` says which base disks VMs point at.
        """
        recipe = self.recipe(name)
        if not force and (built := self.find(name, recipe.content_hash)) is not None:
            return built
        lock = self.build_lock(name)
        try:
            with lock:
                # Another builder may have finished while we waited for the lock.
                existing = self.find(name, recipe.content_hash)
                if existing is not None and not force:
                    return existing
                if existing is not None and in_use is not None and existing.disk in in_use():
                    raise UsageError(
                        f"cannot rebuild {name} {existing.content_hash}: VMs still use it as their base disk",
                        hint="delete those VMs first ('harness gc'), or change the recipe to build a new image",
                    )
                return self.builder(recipe, self.image_root(name), progress or (lambda _msg: None))
        except Timeout as exc:
            raise UsageError(
                f"waited {BUILD_LOCK_TIMEOUT_S:.0f}s for another build of '{name}' to finish",
                hint=f"check for a hung builder holding {lock.lock_file}",
            ) from exc

    def listings(self) -> list[ImageListing]:
        """Every build in the cache, marked current when it matches its recipe today."""
        recipes = discover_recipes(self.recipes_root)
        current_hash = {name: Recipe.load(name, path).content_hash for name, path in recipes.items()}
        rows: list[ImageListing] = []
        if not self.paths.images.is_dir():
            return rows
        for image_root in sorted(p for p in self.paths.images.iterdir() if p.is_dir()):
            for build_dir in sorted(p for p in image_root.iterdir() if p.is_dir()):
                built = BuiltImage.load(build_dir)
                if built is not None:
                    is_current = current_hash.get(image_root.name) == built.content_hash
                    rows.append(ImageListing(image=built, current=is_current))
        return rows

    def prune(self, in_use: set[Path]) -> list[BuiltImage]:
        """Delete stale builds that no VM overlay still uses as its backing file."""
        removed: list[BuiltImage] = []
        for row in self.listings():
            if row.current or row.image.disk in in_use:
                continue
            with self.build_lock(row.image.name):
                shutil.rmtree(row.image.directory)
            removed.append(row.image)
        return removed


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
