"""``harness exec --name VM -- CMD ...``: run one command in a kept VM, for scripts.

    harness exec --name hns-shell-1234-ab12cd -- cat /tmp/harness-upload/checksums.txt
    harness exec --name hns-shell-1234-ab12cd -- 'ls ~/.local/lib | wc -l'     # one shell line
    harness exec --name hns-shell-1234-ab12cd -- sh -s < script.sh             # stdin goes in

One argument is a shell line, run by the guest user's shell as ``ssh host LINE`` would; several
are one command with exactly those arguments (quoted for the guest's shell). Output comes back
once the command ends; its exit status becomes harness's. Past ``--timeout`` the command's
process group is killed in the guest and harness exits 124.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from harness.config import HostPaths
from harness.desk.session import connect, find_kept
from harness.errors import RemoteTimeout, UsageError

DEFAULT_TIMEOUT_S = 600.0
TIMED_OUT_EXIT = 124  # what timeout(1) exits with


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "exec", help="run a command in a kept VM (exit status passed through)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, metavar="VM", help="the kept VM (hns-...)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"seconds before the command is killed (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD",
                        help="the command, after --")
    parser.set_defaults(handler=run)


def command_line(words: list[str]) -> str:
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise UsageError("no command given", hint="put the command after --: harness exec --name VM -- CMD")
    return words[0] if len(words) == 1 else shlex.join(words)


def run(args: argparse.Namespace) -> int:
    line = command_line(list(args.command))
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout:g}")
    kept = find_kept(args.name, HostPaths.from_env())
    stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    with connect(kept) as ssh:
        try:
            result = ssh.run(line, timeout=args.timeout, stdin=stdin)
        except RemoteTimeout as exc:
            print(f"harness exec: {exc}", file=sys.stderr)
            return TIMED_OUT_EXIT
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    return result.exit_code
