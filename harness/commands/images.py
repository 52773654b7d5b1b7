"""`harness images build NAME | list | prune`: the cached base images the QEMU provider boots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.config import HostPaths
from harness.images import image_store
from harness.images.store import ImageStore
from harness.text_table import text_table
from harness.vm.qemu.provider import QemuProvider


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("images", help="build and list the base images VMs are cloned from")
    actions = parser.add_subparsers(dest="images_action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build an image unless its current recipe is built already")
    build.add_argument("name", help="image name, e.g. linux-debian12 (see 'harness images list')")
    build.add_argument("--force", action="store_true", help="rebuild even if the current recipe is built")
    actions.add_parser("list", help="show built images: name, digest, size, date, current or stale, in use")
    actions.add_parser("prune", help="delete stale builds that no VM uses any more")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    paths = HostPaths.from_env()
    store = image_store(paths)
    if args.images_action == "build":
        built = store.ensure(args.name, force=args.force, progress=lambda msg: print(msg, file=sys.stderr),
                             in_use=QemuProvider(paths).backing_files_in_use)
        print(f"{built.name} {built.content_hash} {built.directory}")
        return 0
    if args.images_action == "prune":
        for image in store.prune(in_use=QemuProvider(paths).backing_files_in_use()):
            print(f"removed {image.name} {image.content_hash}")
        return 0
    return _print_listing(store, QemuProvider(paths).backing_files_in_use())


def _print_listing(store: ImageStore, in_use: set[Path]) -> int:
    rows = store.listings()
    known = ", ".join(store.known())
    if not rows:
        print(f"no images built under {store.paths.images}; known recipes: {known}")
        print("build one with: harness images build <name>")
        return 0
    # DIGEST: the build's content hash, the same value a sign-off and `harness inspect` name.
    table = [(row.image.name, row.image.content_hash, f"{row.image.size_bytes / 2**20:.0f} MiB", row.built_at,
              ("current" if row.current else "stale") + (", in use by VMs" if row.image.disk in in_use else ""))
             for row in rows]
    print(text_table(table, ("NAME", "DIGEST", "SIZE", "BUILT (UTC)", "STATUS"), rule=False, right={2}))
    return 0
