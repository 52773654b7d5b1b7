"""``harness cp``: copy a file between the host and a kept VM, proven by sha256 on both ends.

    harness cp build/fix.sh hns-shell-1234-ab12cd:/tmp/         # host -> guest
    harness cp hns-shell-1234-ab12cd:/tmp/install.log ./        # guest -> host

Exactly one side names the VM, as ``VM:PATH``. A destination that is a directory (or ends in
``/``) gets the source's file name.
"""

from __future__ import annotations

import argparse
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.config import HostPaths
from harness.desk.session import connect, find_kept
from harness.errors import UsageError
from harness.host.run_label import VMName

COPY_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Place:
    vm: str  # "" for the host
    path: str


def parse_place(text: str) -> Place:
    head, sep, rest = text.partition(":")
    if sep and VMName.parse(head) is not None:
        if not rest:
            raise UsageError(f"{text}: no path after the VM name", hint="write VM:PATH, e.g. hns-...:/tmp/")
        return Place(head, rest)
    return Place("", text)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "cp", help="copy a file between the host and a kept VM (VM:PATH on one side)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DST")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    source, destination = parse_place(args.source), parse_place(args.destination)
    if bool(source.vm) == bool(destination.vm):
        raise UsageError(
            "harness cp copies between the host and one kept VM: exactly one side must be VM:PATH",
            hint="e.g. `harness cp file.txt hns-...:/tmp/` or `harness cp hns-...:/tmp/log.txt .`",
        )
    kept = find_kept(source.vm or destination.vm, HostPaths.from_env())
    with connect(kept) as ssh:
        if destination.vm:
            local = Path(source.path)
            if not local.is_file():
                raise UsageError(f"{local} is not a file on the host", hint="harness cp copies single files")
            remote = destination.path
            if remote.endswith("/") or ssh.run(f"test -d {shlex.quote(remote)}", timeout=30).ok:
                remote = posixpath.join(remote, local.name)
            done = ssh.put(local, remote, timeout=COPY_TIMEOUT_S)
            where = f"{destination.vm}:{remote}"
        else:
            remote = source.path
            if not ssh.run(f"test -f {shlex.quote(remote)}", timeout=30).ok:
                raise UsageError(f"{source.vm}:{remote} is not a file in the guest", hint="harness cp copies single files")
            local = Path(destination.path)
            if destination.path.endswith("/") or local.is_dir():
                local = local / posixpath.basename(remote)
            done = ssh.get(remote, local, timeout=COPY_TIMEOUT_S)
            where = str(local)
    print(f"copied {args.source} -> {where}: {done.size} bytes, sha256 {done.sha256} (same on both ends)")
    return 0
