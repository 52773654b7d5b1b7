"""`harness diff OLD NEW`: which layers changed content, which archives changed bytes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.inspect.archive import read_release
from harness.inspect.diff import diff_releases
from harness.inspect.render import render_diff
from harness.preflight import judge_release_input


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two releases layer by layer",
        description="Per layer: did its content change, did its archive bytes change? Flags layers re-published "
        "with identical content (users download them again for nothing). Exits 1 with --strict when any "
        "layer was re-packed without a content change.",
    )
    parser.add_argument("old", type=Path, help="the previous release")
    parser.add_argument("new", type=Path, help="the new release")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for given in (args.old, args.new):
        judge_release_input(given)  # the same judgement as every verb, before either is read
    result = diff_releases(read_release(args.old), read_release(args.new))
    print(json.dumps(result.to_dict(), indent=2) if args.json else render_diff(result))
    failing = [f for f in result.findings if f.severity == "error" or (args.strict and f.severity == "warning")]
    return 1 if failing else 0
