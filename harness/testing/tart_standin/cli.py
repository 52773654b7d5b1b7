"""The stand-in's command line: tart's commands, flags, output and exit codes.

Exit codes follow tart: 0 success, 2 "does not exist" / "not running" / "already running",
1 any other error; a malformed command line exits 64 (EX_USAGE) as swift-argument-parser does.
Commands beyond tart's (``standin-import``, ``shim``) carry a ``standin-`` prefix or are plainly
stand-in plumbing, so a test can never mistake them for tart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.testing.tart_standin import STANDIN_BANNER
from harness.testing.tart_standin.home import (
    DEFAULT_DISK_GB,
    StandinError,
    TartHome,
    VMDir,
    random_mac,
)
from harness.testing.tart_standin.network import SoftnetRuleError, SoftnetRules, parse_version
from harness.waiting import attempts

EXIT_USAGE = 64
EXIT_STATE = 2
VM_LIMIT_MESSAGE = "The number of VMs exceeds the system limit"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _settings_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def ssh_port() -> int:
    """The port every stand-in VM's SSH answers on (tart: 22; here loopback's 22 is the host's)."""
    return _settings_int("TART_STANDIN_SSH_PORT", 2222)


def _existing(home: TartHome, name: str) -> VMDir:
    vm = home.vm(name)
    if not vm.exists():
        raise StandinError(f'the specified VM "{name}" does not exist', EXIT_STATE)
    return vm


def _is_remote(name: str) -> bool:
    return "/" in name


# -- clone / pull / set ---------------------------------------------------------------------


def _pull(home: TartHome, remote: str) -> VMDir:
    cached = home.oci_dir(remote)
    if cached.exists():
        return cached
    entry = home.registry().get(remote)
    if entry is None:
        raise StandinError(
            f"failed to pull {remote}: not in the stand-in's registry ($TART_HOME/standin-registry.json); "
            "add it with `standin-import --remote`"
        )
    print(f"pulling {remote}...")
    home.create_vm(cached, dict(entry), DEFAULT_DISK_GB)
    return cached


def cmd_clone(home: TartHome, args: argparse.Namespace) -> int:
    source = _pull(home, args.source) if _is_remote(args.source) else _existing(home, args.source)
    target = home.vm(args.new_name)
    # tart replaces an existing target without asking: so does the stand-in (the contract's point).
    home.create_vm(target, source.config(), source.disk_gb() or DEFAULT_DISK_GB)
    if source.state_path.exists():  # tart copies a suspended VM's state (and keeps its MAC)
        shutil.copyfile(source.state_path, target.state_path)
    return 0


def cmd_pull(home: TartHome, args: argparse.Namespace) -> int:
    _pull(home, args.remote_name)
    return 0


def cmd_set(home: TartHome, args: argparse.Namespace) -> int:
    vm = _existing(home, args.name)
    config = vm.config()
    if args.cpu is not None:
        config["cpuCount"] = args.cpu
    if args.memory is not None:
        config["memorySize"] = args.memory * 1024 * 1024
    if args.random_mac:
        config["macAddress"] = random_mac()
    if args.display is not None:
        width, _, height = args.display.partition("x")
        config["display"] = {"width": int(width), "height": int(height)}
    vm.write_config(config)
    if args.disk_size is not None:
        if args.disk_size * 10**9 < vm.disk_path.stat().st_size:
            raise StandinError("the new disk size must be larger than the current one")
        with vm.disk_path.open("r+b") as disk:
            disk.truncate(args.disk_size * 10**9)
    return 0


# -- list / get ----------------------------------------------------------------------------


def _state(vm: VMDir) -> str:
    if vm.running():
        return "running"
    return "suspended" if vm.state_path.exists() else "stopped"


def cmd_list(home: TartHome, args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    if args.source in (None, "local"):
        rows += [
            {"Source": "local", "Name": vm.name, "Disk": vm.disk_gb(), "Size": round(vm.size_on_disk_gb()),
             "Accessed": vm.accessed(), "Running": vm.running(), "State": _state(vm)}
            for vm in home.local_vms()
        ]
    if args.source in (None, "oci"):
        rows += [
            {"Source": "OCI", "Name": vm.name, "Disk": vm.disk_gb(), "Size": round(vm.size_on_disk_gb()),
             "Accessed": vm.accessed(), "Running": False, "State": "stopped"}
            for vm in home.oci_vms()
        ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print("Source\tName\tDisk\tSize\tAccessed\tState")
        for row in rows:
            print(f"{row['Source']}\t{row['Name']}\t{row['Disk']}\t{row['Size']}\t{row['Accessed']}\t{row['State']}")
    return 0


def cmd_get(home: TartHome, args: argparse.Namespace) -> int:
    vm = _existing(home, args.name)
    config = vm.config()
    display = config.get("display", {"width": 1024, "height": 768})
    info = {
        "OS": config.get("os", "linux"),
        "CPU": config.get("cpuCount", 2),
        "Memory": int(config.get("memorySize", 4 * 1024**3)) // (1024 * 1024),
        "Disk": vm.disk_gb(),
        "DiskFormat": "raw",
        "Size": f"{vm.size_on_disk_gb():.3f}",
        "Display": f"{display['width']}x{display['height']}",
        "Running": vm.running(),
        "State": _state(vm),
    }
    if args.format == "json":
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}\t{value}")
    return 0


# -- ip ------------------------------------------------------------------------------------


def cmd_ip(home: TartHome, args: argparse.Namespace) -> int:
    vm = _existing(home, args.name)
    for _ in attempts(args.wait, 1.0):  # tart polls once a second
        if not vm.running():
            raise StandinError(f'VM "{args.name}" is not running', EXIT_STATE)
        address = _resolve(home, vm, args.resolver)
        if address:
            print(address)
            return 0
    raise StandinError("no IP address found, is your VM running?")


def _resolve(home: TartHome, vm: VMDir, resolver: str) -> str | None:
    run = vm.run_state()
    if resolver == "agent":
        return run.get("address") if vm.config().get("standinGuestAgent") else None
    if resolver == "arp" and run.get("softnet"):
        return None  # Softnet guests never show up in the host's ARP table
    # dhcp/arp: whatever the lease table says for this MAC, stale or not.
    return home.lease_for(str(vm.config().get("macAddress", "")))


# -- run / stop / delete -------------------------------------------------------------------


def _softnet_rules(args: argparse.Namespace) -> SoftnetRules:
    rules = SoftnetRules(
        enabled=bool(args.net_softnet or args.net_softnet_block or args.net_softnet_allow),
        block=tuple(args.net_softnet_block or ()),
        allow=tuple(args.net_softnet_allow or ()),
    )
    version = parse_version(os.environ.get("TART_STANDIN_SOFTNET_VERSION", "0.19"))
    try:
        rules.validate(version)
    except SoftnetRuleError as exc:
        raise StandinError(f"Softnet: {exc}") from None
    return rules


def cmd_run(home: TartHome, args: argparse.Namespace) -> int:
    from harness.testing.tart_standin.runner import run_vm  # the heavy part, only for `run`

    vm = _existing(home, args.name)
    rules = _softnet_rules(args)
    # tart's Run.validate(): a suspended VM runs suspendable; only macOS VMs can be, without --dir.
    suspendable = bool(args.suspendable or vm.state_path.exists())
    if suspendable and vm.config().get("os", "linux") != "darwin":
        raise StandinError("You can only suspend macOS VMs", EXIT_USAGE)
    if suspendable and args.dir:
        raise StandinError("Suspending VMs with shared directories is not supported", EXIT_USAGE)
    limit = _settings_int("TART_STANDIN_VM_LIMIT", 2)
    return run_vm(home, vm, rules, limit=limit, ssh_port=ssh_port(), limit_message=VM_LIMIT_MESSAGE,
                  suspendable=suspendable)


def cmd_suspend(home: TartHome, args: argparse.Namespace) -> int:
    """tart's Suspend.swift: SIGUSR1 to the `run` process, which saves and exits; returns at once."""
    vm = _existing(home, args.name)
    pid = int(vm.run_state().get("pid", 0))
    if not pid:
        raise StandinError(f'VM "{args.name}" is not running', EXIT_STATE)
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        raise StandinError(f'failed to send SIGUSR1 signal to the "tart run" process running VM "{args.name}"') from None
    return 0


def cmd_stop(home: TartHome, args: argparse.Namespace) -> int:
    vm = _existing(home, args.name)
    if not vm.running():
        raise StandinError(f'VM "{args.name}" is not running', EXIT_STATE)
    pid = int(vm.run_state().get("pid", 0))
    if pid:
        _signal(pid, signal.SIGINT)
    for _ in attempts(args.timeout, 0.2):
        if not vm.running():
            break
    if vm.running() and pid:
        _signal(pid, signal.SIGKILL)
        while vm.running():
            time.sleep(0.1)
    return 0


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cmd_delete(home: TartHome, args: argparse.Namespace) -> int:
    for name in args.name:
        vm = _existing(home, name)
        if vm.running():
            raise StandinError(f'failed to delete VM "{name}": it is running, stop it first')
        shutil.rmtree(vm.path)
    return 0


def cmd_prune(home: TartHome, args: argparse.Namespace) -> int:
    """Reproduces the hazard on purpose: every stopped local VM goes, golden images included."""
    if args.entries == "vms":
        for vm in home.local_vms():
            if not vm.running():
                shutil.rmtree(vm.path)
    return 0


# -- stand-in plumbing ---------------------------------------------------------------------


def cmd_standin_import(home: TartHome, args: argparse.Namespace) -> int:
    """Create a golden VM (or a remote registry entry) backed by a QEMU base image."""
    config = {
        "version": 1, "os": args.os, "arch": "arm64", "cpuCount": 2, "memorySize": 4 * 1024**3,
        "macAddress": random_mac(), "display": {"width": 1024, "height": 768},
        "standinBacking": args.backing, "standinGuestAgent": args.guest_agent,
    }
    if args.remote:
        home.register_remote(args.name, config)
    else:
        home.create_vm(home.vm(args.name), config, args.disk_size)
    return 0


def cmd_shim(home: TartHome, args: argparse.Namespace) -> int:
    from harness.testing.tart_standin.shim import write_shim

    print(write_shim(Path(args.directory)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tart", description=STANDIN_BANNER)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("clone")
    p.add_argument("source")
    p.add_argument("new_name")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--concurrency", type=int)
    p.set_defaults(handler=cmd_clone)

    p = sub.add_parser("pull")
    p.add_argument("remote_name")
    p.set_defaults(handler=cmd_pull)

    p = sub.add_parser("set")
    p.add_argument("name")
    p.add_argument("--cpu", type=int)
    p.add_argument("--memory", type=int)
    p.add_argument("--disk-size", type=int)
    p.add_argument("--display")
    p.add_argument("--random-mac", action="store_true")
    p.set_defaults(handler=cmd_set)

    p = sub.add_parser("list")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--source", choices=("local", "oci"))
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("get")
    p.add_argument("name")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=cmd_get)

    p = sub.add_parser("ip")
    p.add_argument("name")
    p.add_argument("--wait", type=int, default=0)
    p.add_argument("--resolver", choices=("dhcp", "arp", "agent"), default="dhcp")
    p.set_defaults(handler=cmd_ip)

    p = sub.add_parser("run")
    p.add_argument("name")
    for flag in ("--no-graphics", "--no-audio", "--no-clipboard", "--suspendable", "--net-softnet", "--net-host"):
        p.add_argument(flag, action="store_true")
    p.add_argument("--dir", action="append")
    p.add_argument("--root-disk-opts")
    p.add_argument("--net-softnet-block", action="append")
    p.add_argument("--net-softnet-allow", action="append")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("suspend")
    p.add_argument("name")
    p.set_defaults(handler=cmd_suspend)

    p = sub.add_parser("stop")
    p.add_argument("name")
    p.add_argument("--timeout", "-t", type=int, default=30)
    p.set_defaults(handler=cmd_stop)

    p = sub.add_parser("delete")
    p.add_argument("name", nargs="+")
    p.set_defaults(handler=cmd_delete)

    p = sub.add_parser("prune")
    p.add_argument("--entries", choices=("caches", "vms"), default="caches")
    p.set_defaults(handler=cmd_prune)

    p = sub.add_parser("standin-import", help="stand-in only: make a golden VM backed by a QEMU image")
    p.add_argument("name")
    p.add_argument("--backing", required=True, help="QEMU base image name, e.g. linux-debian12")
    p.add_argument("--os", default="linux", help="what `get` reports (the guest is Linux regardless)")
    p.add_argument("--disk-size", type=int, default=DEFAULT_DISK_GB)
    p.add_argument("--guest-agent", action="store_true", help="pretend the image has tart's guest agent")
    p.add_argument("--remote", action="store_true", help="register NAME as a remote image for clone/pull")
    p.set_defaults(handler=cmd_standin_import)

    p = sub.add_parser("shim", help="stand-in only: write a `tart` executable into DIRECTORY")
    p.add_argument("directory")
    p.set_defaults(handler=cmd_shim)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    home = TartHome.from_env()
    try:
        return int(args.handler(home, args))
    except StandinError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
