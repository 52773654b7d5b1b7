"""build.py's pipeline: tools -> seed + stack -> model -> good tree -> variants -> tarballs."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from . import log
from .assemble import good_release, previous_release
from .cache import exclusive, prune_siblings
from .config import BuildPaths, ReleaseIdentity
from .errors import BuildError
from .model_build import ensure_modelfiles
from .publish import PublishedRelease, publish
from .stack import ensure_stack
from .tools import ensure_tools
from .variants import VariantInputs, VariantSpec, apply_variant, load_variant_table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="build.py",
        description="Build the reference release tarball (and, on request, its broken variants). "
                    "Prints the paths of the tarballs on stdout; progress goes to stderr.",
    )
    parser.add_argument("--variant", action="append", default=[], metavar="NAME",
                        help="also build this broken variant (repeatable); see --list-variants")
    parser.add_argument("--all-variants", action="store_true", help="also build every broken variant")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: examples/reference_release/dist)")
    parser.add_argument("--clean", action="store_true",
                        help="drop the cached seed, stack, model and variant artefacts first (keeps the tools venv)")
    parser.add_argument("--list-variants", action="store_true", help="print the variant table and exit")
    return parser.parse_args(argv)


def print_table(specs: list[VariantSpec]) -> None:
    for spec in specs:
        print(f"{spec.name:24} {spec.stage:12} {', '.join(spec.caught_by):45} {spec.defect}")


def write_manifest(paths: BuildPaths, identity: ReleaseIdentity, specs: list[VariantSpec],
                   built: list[PublishedRelease]) -> None:
    """<out>/manifest.json: every release directory currently in <out>, for the harness's variant tests."""
    manifest_path = paths.out / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    releases = {k: v for k, v in previous.get("releases", {}).items()
                if (paths.out / v["tarball"]).exists()}
    by_name = {s.name: s for s in specs}
    for release in built:
        entry: dict[str, object] = {"tarball": str(release.tarball.relative_to(paths.out)), "sha256": release.sha256,
                                    "installer": str((release.directory / "install.sh").relative_to(paths.out))}
        if release.label in by_name:
            spec = asdict(by_name[release.label])
            spec.pop("name")
            entry.update(spec)
        releases[release.label] = entry
    manifest = {"name": identity.name, "version": identity.version, "platform": identity.platform,
                "arch": identity.arch, "os": identity.os, "releases": dict(sorted(releases.items()))}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def build(args: argparse.Namespace) -> list[PublishedRelease]:
    paths = BuildPaths.default(args.out)
    specs = load_variant_table(paths.variants_table)
    if args.list_variants:
        print_table(specs)
        return []
    wanted = [s.name for s in specs] if args.all_variants else list(dict.fromkeys(args.variant))
    unknown = sorted(set(wanted) - {s.name for s in specs})
    if unknown:
        raise BuildError(f"unknown variant(s): {', '.join(unknown)}", "see: build.py --list-variants")
    with exclusive(paths.build / ".build.lock"):
        return build_locked(args, paths, specs, wanted)


def build_locked(args: argparse.Namespace, paths: BuildPaths, specs: list[VariantSpec],
                 wanted: list[str]) -> list[PublishedRelease]:
    if args.clean:
        shutil.rmtree(paths.build / "cache", ignore_errors=True)
        shutil.rmtree(paths.build / "venvstacks", ignore_errors=True)
    identity = ReleaseIdentity.current()
    tools_python = ensure_tools(paths)
    stack = ensure_stack(paths, tools_python)
    modelfiles = ensure_modelfiles(paths, tools_python)
    for entry in (stack.root.parent, modelfiles.parent):
        prune_siblings(entry)
    good = good_release(paths, identity, stack, modelfiles)
    built = [publish("good", good, paths.out, identity)]
    if wanted:
        # The release before this one: what the upgrade check installs first.
        previous, older = previous_release(paths, identity, stack, modelfiles)
        built.append(publish("previous", previous, paths.out / "previous", older))
    inputs = VariantInputs(paths, stack)
    for name in wanted:
        built.append(publish(name, apply_variant(name, good, inputs), paths.out / "variants" / name, identity))
    write_manifest(paths, identity, specs, built)
    return built


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    try:
        built = build(parse_args(argv))
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build.py: interrupted; caches are only kept when complete, re-run to continue", file=sys.stderr)
        return 130
    for release in built:
        print(release.tarball)
    if built:
        log.info(f"{len(built)} tarball(s) ready in {time.monotonic() - started:.1f}s")
    return 0
