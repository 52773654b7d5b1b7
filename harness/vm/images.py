"""The catalogue of base images: recipes in ``harness/vm_images/`` (shipped in the package), their
content hashes, and the builds in the cache (``HostPaths.images/<name>/<hash>/``).

A recipe is a directory ``harness/vm_images/linux/<variant>/`` holding ``recipe.toml``; its image name is
``linux-<variant>``. Its content hash covers every file of the directory except ``*.md`` plus
``BUILDER_VERSION``, so editing the recipe (or the way it is built) yields a new image while
documentation edits do not. Builds are made by ``harness.vm.image_build``; this module only finds,
describes and lists them, and serialises builders with a file lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

import harness
from harness.config import HostPaths
from harness.errors import UsageError

# Bump when harness/vm/image_build.py changes what it puts into an image.
BUILDER_VERSION = "1"
RECIPE_FILE = "recipe.toml"
MANIFEST_FILE = "manifest.json"
HASH_LENGTH = 16
BUILD_LOCK_TIMEOUT_S = 45 * 60.0  # a cold build takes a few minutes; waiting longer means a hang

Progress = Callable[[str], None]


def default_recipes_root() -> Path:
    """The recipes shipped inside the harness package, or ``$HARNESS_VM_IMAGES``."""
    override = os.environ.get("HARNESS_VM_IMAGES")
    if override:
        return Path(override)
    return Path(harness.__file__).resolve().parent / "vm_images"


@dataclass(frozen=True)
class Recipe:
    """One parsed ``recipe.toml`` and the directory it sits in."""

    name: str
    directory: Path
    description: str
    suite: str
    arch: str
    variant: str
    user: str
    disk_size_mb: int
    kernel_cmdline: str
    packages: tuple[str, ...]
    forbidden_packages: tuple[str, ...]
    forbidden_binaries: tuple[str, ...]
    initrd_must_contain: tuple[str, ...]

    @classmethod
    def load(cls, name: str, directory: Path) -> Recipe:
        path = directory / RECIPE_FILE
        try:
            data = tomllib.loads(path.read_text())["image"]
            return cls(
                name=name,
                directory=directory,
                description=str(data.get("description", "")),
                suite=str(data["suite"]),
                arch=str(data["arch"]),
                variant=str(data.get("variant", "minbase")),
                user=str(data["user"]),
                disk_size_mb=int(data["disk_size_mb"]),
                kernel_cmdline=str(data["kernel_cmdline"]),
                packages=tuple(data["packages"]),
                forbidden_packages=tuple(data.get("forbidden_packages", ())),
                forbidden_binaries=tuple(data.get("forbidden_binaries", ())),
                initrd_must_contain=tuple(data.get("initrd_must_contain", ())),
            )
        except (KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(
                f"image recipe {path} is malformed: {exc!r}",
                hint=f"compare it with {default_recipes_root() / 'linux' / 'debian12' / RECIPE_FILE}",
            ) from exc

    @property
    def content_hash(self) -> str:
        return recipe_hash(self.directory)


def recipe_hash(directory: Path) -> str:
    """Hash of the recipe's files (path, executable bit, content) and the builder version."""
    digest = hashlib.sha256(f"builder {BUILDER_VERSION}\n".encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative.endswith(".md") or "__pycache__" in relative:
            continue
        executable = "x" if os.access(path, os.X_OK) else "-"
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{relative}\0{executable}\0{content}\n".encode())
    return digest.hexdigest()[:HASH_LENGTH]


def discover_recipes(root: Path) -> dict[str, Path]:
    """Image name -> recipe directory, for every ``<root>/linux/<variant>/recipe.toml``."""
    found: dict[str, Path] = {}
    for recipe_file in sorted(root.glob(f"linux/*/{RECIPE_FILE}")):
        found[f"linux-{recipe_file.parent.name}"] = recipe_file.parent
    return found


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

    def __init__(self, paths: HostPaths, recipes_root: Path | None = None) -> None:
        self.paths = paths
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
        # Imported here: building pulls in the whole build pipeline, looking up does not.
        from harness.vm.image_build import build_image

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
                return build_image(recipe, self.image_root(name), progress or (lambda _msg: None))
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
