"""Base images: recipes (:mod:`.recipe`), the cache of builds (:mod:`.store`), the builder (:mod:`.build`)."""

from __future__ import annotations

from pathlib import Path

from harness.config import HostPaths
from harness.errors import HarnessError
from harness.images.build import build_image
from harness.images.store import ImageStore


def image_store(paths: HostPaths, recipes_root: Path | None = None) -> ImageStore:
    """The image store of this installation: missing images are built with debootstrap."""
    return ImageStore(paths, recipes_root, builder=build_image)


def current_digest(name: str, paths: HostPaths | None = None) -> str:
    """The digest of the build of ``name`` a VM would boot now (its content hash, the DIGEST
    column of ``harness images list``); "" when the recipe is unknown or not built here."""
    try:
        store = image_store(paths or HostPaths.from_env())
        return store.current(name).content_hash if name in store.known() else ""
    except (HarnessError, OSError):
        return ""
