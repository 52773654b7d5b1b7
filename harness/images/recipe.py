"""Base image recipes: ``vm_images/linux/<variant>/recipe.toml`` and their content hashes.

The recipes live at the repository's top level (``vm_images/``); ``harness/vm_images`` is a link to
that folder, through which the wheel carries them as package data, so a checkout and a pip install
find them in the same place.

A recipe's image name is ``linux-<variant>``. Its content hash covers every file of the directory
except ``*.md`` plus ``BUILDER_VERSION``, so editing the recipe (or the way it is built) yields a new
image while documentation edits do not.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import harness
from harness.errors import UsageError

# Bump when harness/images/build.py changes what it puts into an image.
BUILDER_VERSION = "1"
RECIPE_FILE = "recipe.toml"
HASH_LENGTH = 16


def default_recipes_root() -> Path:
    """The recipes shipped with the harness package, or ``$HARNESS_VM_IMAGES``."""
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
