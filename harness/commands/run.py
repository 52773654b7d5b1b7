"""`harness run` (placeholder until its area lands)."""

from __future__ import annotations

import argparse

from harness.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="not implemented yet")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'harness run' is not implemented yet")
