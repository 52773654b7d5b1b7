"""Base images: recipes (:mod:`.recipe`), the cache of builds (:mod:`.store`), the builder (:mod:`.build`)."""

from __future__ import annotations

from pathlib import Path

from harness.config import HostPaths
from harness.images.build import build_image
from harness.images.store import ImageStore


def image_store(paths: HostPaths, recipes_root: Path | None = None) -> ImageStore:
    """The image store of this installation: missing images are built with debootstrap."""
    return ImageStore(paths, recipes_root, builder=build_image)
