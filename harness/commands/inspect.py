"""`harness inspect`: static portability checks of a release tarball, no VM needed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.inspect.render import render_report
from harness.inspect.runner import inspect_release
from harness.inspect.targets import known_targets
from harness.preflight import judge_release_input


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="find portability defects in a release tarball or installer package without booting a VM",
        description="Read a release (tarball, wheel or directory) with its nested layer archives and "
        "report archive-safety, layout, Mach-O, ELF, script and footprint findings. "
        "Exits 1 when any finding is an error.",
    )
    parser.add_argument("release", type=Path, help="release tarball (.tar.gz/.tar.xz), macOS installer package (.pkg), wheel or directory")
    parser.add_argument("--profile", help="profile whose [layout] the release must match (name or TOML path)")
    parser.add_argument("--profile-variant", action="append", default=[], metavar="NAME", dest="variants",
                        help="apply this [[variant]] of the profile instead of the one the tarball's version picks")
    parser.add_argument("--target", help=f"target system: {', '.join(known_targets())} or a target JSON "
                        "(default: inferred from the binaries)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    judge_release_input(args.release)  # what `harness run` refuses, this refuses too
    report = inspect_release(args.release, target=args.target, profile=args.profile, variants=args.variants)
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_report(report))
    return 1 if report.errors() else 0
