"""The ``harness`` command. Each subcommand lives in ``harness/commands/<name>.py`` and exposes
``register(subparsers)`` and ``run(args) -> int``; this module only dispatches and turns
``HarnessError`` into a clear message and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from harness import __version__
from harness.errors import HarnessError, UsageError

SUBCOMMANDS: tuple[str, ...] = ("run", "shell", "repro", "exec", "cp", "images", "gc", "inspect", "diff", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Boot clean VMs, install a release offline, serve it and check its completions.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"harness.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except HarnessError as exc:
        kind = "usage error" if isinstance(exc, UsageError) else "error"
        print(f"harness: {kind}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except BrokenPipeError:
        # The reader went away (`harness images list | head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
    except KeyboardInterrupt:
        print("harness: interrupted; VMs started by this run were stopped and removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
