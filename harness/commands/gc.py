"""``harness gc``: remove VMs, VM directories and leases that runs left behind.

By default only VMs whose owner process is dead and that were not kept on purpose; ``--all-mine``
adds kept VMs; ``--name`` removes exactly the VMs named, whatever their state.
"""

from __future__ import annotations

import argparse

from harness.config import HostPaths
from harness.errors import UsageError
from harness.host.reaper import ReapPolicy, harness_vms, reap
from harness.host.run_label import LeaseBook, VMName
from harness.text_table import text_table
from harness.vm.registry import available_providers


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "gc",
        help="remove VMs and disk images left behind by dead or finished runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would go, remove nothing")
    parser.add_argument(
        "--list", action="store_true", help="list the harness's VMs on this host and exit"
    )
    parser.add_argument(
        "--all-mine", action="store_true",
        help="also remove VMs kept with --keep-vm (VMs of runs still alive stay)",
    )
    parser.add_argument(
        "--name", action="append", default=[], metavar="NAME",
        help="remove exactly this VM (hns-...), even if kept or its run is alive; repeatable",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for name in args.name:
        if VMName.parse(name) is None:
            raise UsageError(
                f"'{name}' is not a harness VM name",
                hint="harness VMs are named hns-<run>-<pid>-<tag>; others are never touched",
            )
    paths = HostPaths.from_env()
    if args.list:
        return _list(paths)
    policy = ReapPolicy(include_kept=args.all_mine, names=frozenset(args.name))
    outcomes = reap(available_providers(paths), paths, policy, dry_run=args.dry_run, say=print)
    missing = set(args.name) - {o.leftover.name for o in outcomes}
    for name in sorted(missing):
        print(f"no VM named {name} on this host")
    if not outcomes and not args.name:
        kept = [lease.name for lease in LeaseBook(paths.state / "leases").all() if lease.kept]
        print("nothing to remove" + (f" ({len(kept)} kept VM(s) stay; --all-mine removes them)"
                                     if kept and not args.all_mine else ""))
    failed = [o for o in outcomes if o.error]
    return 1 if failed or missing else 0


def _list(paths: HostPaths) -> int:
    """One line per harness VM: where it runs, its state, whether its owner lives, kept or not."""
    vms = harness_vms(available_providers(paths), LeaseBook(paths.state / "leases"))
    if not vms:
        print("no harness VMs on this host")
        return 0
    rows = [(str(vm.name), vm.provider, vm.state,
             f"{vm.name.owner_pid} ({'alive' if vm.owner_alive else 'dead'})",
             "yes" if vm.kept else "no") for vm in vms]
    print(text_table(rows, ("NAME", "PROVIDER", "STATE", "OWNER", "KEPT"), rule=False))
    return 0
