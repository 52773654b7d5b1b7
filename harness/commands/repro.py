"""``harness repro RESULTS_DIR [--check NAME]``: a failed check's target, recreated and kept.

    harness repro results/                          # the run's first failed check
    harness repro results/ --check install_offline  # that check (--target T when several ran it)
    harness repro results/ --shell                  # and open the shell right away

The run's journal says what the target was made from. The same tarball (by sha256; refused if it
changed), the same profile file (by sha256), the same image (by digest) and the same VM options
make a fresh VM, and the steps of the run are replayed up to the check: the release copied in,
installed when the check needed an install, the server started when it needed a server. The VM
is kept there; the command to get in (`harness shell --name ...`) is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.config import HostPaths
from harness.desk.repro import plan_repro, replay
from harness.desk.session import say_to_stderr
from harness.errors import UsageError
from harness.preflight import check_images


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "repro", help="recreate a failed check's target from a run's results, in a kept VM",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results_dir", type=Path, nargs="?", default=None, metavar="RESULTS_DIR",
                        help="a finished run's results directory (default: ./results)")
    parser.add_argument("--results-dir", type=Path, default=None, metavar="DIR", dest="results_dir_option",
                        help="the same, spelled as `harness run` and `harness report` spell it")
    parser.add_argument("--check", default=None, metavar="NAME", help="the check to stop before (default: the first failed one)")
    parser.add_argument("--target", default=None, metavar="TARGET", help="the target, when the check ran on several")
    parser.add_argument("--shell", action="store_true", help="open a shell in the VM once it is there")
    parser.set_defaults(handler=run)


def results_dir_of(args: argparse.Namespace) -> Path:
    given = [p for p in (args.results_dir, args.results_dir_option) if p is not None]
    if len(given) == 2 and given[0] != given[1]:
        raise UsageError(f"two results directories given ({given[0]} and {given[1]})", hint="pass one of them")
    return (given[0] if given else Path("results")).expanduser().absolute()


def run(args: argparse.Namespace) -> int:
    paths = HostPaths.from_env()
    plan = plan_repro(results_dir_of(args), args.check, args.target)
    check_images([plan.inputs.image], paths)  # before any VM: the image may have been pruned since
    check = plan.check
    say_to_stderr(f"harness repro: {check.check} on {check.target} ({check.outcome}"
                  + (f": {check.message.splitlines()[0][:200]}" if check.message else "") + ")")
    say_to_stderr(f"harness repro: release {plan.release} (sha256 {plan.inputs.release_sha256}), profile "
                  f"{plan.inputs.profile_source}, image {plan.inputs.image} ({plan.inputs.image_digest or 'no digest'}), "
                  f"replaying up to stage {plan.stage or 'unknown (everything)'}")
    result = replay(plan, paths)
    print(f"reproduced {check.check} on {check.target} in VM {result.vm}: {result.reached}")
    print(f"  enter:   harness shell --name {result.vm}")
    print(f"  run:     harness exec --name {result.vm} -- CMD")
    print(f"  remove:  harness gc --name {result.vm}")
    if args.shell:
        from harness.commands.shell import reenter

        return reenter(result.vm, paths)
    return 0
