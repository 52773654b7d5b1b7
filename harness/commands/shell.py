"""``harness shell``: a clean VM with the release in it, and a shell inside.

    harness shell                                  # the reference release on linux-debian12
    harness shell --release dist/tiles-v0.4.18-x86_64-linux.tar.gz --profile tiles --install
    harness shell --keep                           # the VM stays after `exit`
    harness shell --name hns-shell-1234-ab12cd     # back into a kept VM

The VM is fresh (restored from a saved, booted machine where the provider can), the tarball is
copied to /tmp/harness-upload and its sha256 proven in the guest, and the network is cut unless
``--online-for-debugging``: the prompt says which. The terminal is a real one (raw mode, a PTY in
the guest: Ctrl-C reaches the guest, resizes follow). The exit status of the shell (the last
command's, or the one given to ``exit``) becomes harness's. On exit the VM is removed unless
``--keep``; a kept VM is listed by ``harness gc --list`` and removed by ``harness gc --name``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.config import HostPaths
from harness.desk.guest_shell import launch_command
from harness.desk.session import (
    DeskVMSpec,
    connect,
    find_kept,
    make_machine,
    prepare,
    remove_logs,
    say_to_stderr,
)
from harness.desk.terminal import hangup_as_interrupt, run_terminal
from harness.errors import UsageError
from harness.preflight import check_run
from harness.profile import load_profile
from harness.run_options import DEFAULT_IMAGE, DEFAULT_PROFILE
from harness.target import Target, TargetSpec, resolve
from harness.vm.registry import provider_for_image

# Options that shape a new VM: meaningless when re-entering a kept one.
NEW_VM_OPTIONS = ("release", "image", "profile", "install", "online", "keep")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "shell", help="a clean VM with the release copied in (and installed), and a shell inside",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--release", default=None, metavar="TARBALL",
                        help="release tarball to copy in (default: the reference release, built if missing)")
    parser.add_argument("--image", default=None, metavar="IMAGE", help=f"base image (default {DEFAULT_IMAGE})")
    parser.add_argument("--profile", default=None, metavar="NAME|FILE",
                        help=f"release profile: whose installer --install runs (default {DEFAULT_PROFILE})")
    parser.add_argument("--install", action="store_true", help="run the profile's installer before the prompt")
    parser.add_argument("--online-for-debugging", dest="online", action="store_true",
                        help="leave the guest's network open (it is cut by default, as in every run)")
    parser.add_argument("--keep", action="store_true", help="keep the VM after the shell exits")
    parser.add_argument("--name", default=None, metavar="VM",
                        help="re-enter a kept VM (hns-...) instead of making a new one")
    parser.add_argument("--cold", dest="warm", action="store_false", default=True,
                        help="boot the VM from scratch instead of restoring a saved, booted machine")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    paths = HostPaths.from_env()
    if args.name:
        given = [f"--{o.replace('_', '-')}" for o in NEW_VM_OPTIONS if getattr(args, o)]
        if given:
            raise UsageError(f"--name re-enters a kept VM as it is; {', '.join(given)} only apply to a new VM",
                             hint="drop them, or leave out --name to make a new VM")
        return reenter(args.name, paths)
    return new_shell(args, paths)


def resolve_target(release: str | None, image: str, profile_name: str, paths: HostPaths) -> Target:
    """The release and image judged as ``harness run`` judges them, before any VM."""
    from harness.commands.run import reference_release

    profile = load_profile(profile_name)
    if release is None and profile.name != DEFAULT_PROFILE:
        raise UsageError(f"the {profile.name} profile needs a release: pass --release PATH")
    path = Path(release).expanduser().absolute() if release else reference_release()
    check_run([path], [image], profile, paths)
    return resolve(TargetSpec(path, image, image), profile)


def new_shell(args: argparse.Namespace, paths: HostPaths) -> int:
    started = time.monotonic()
    image = args.image or DEFAULT_IMAGE
    target = resolve_target(args.release, image, args.profile or DEFAULT_PROFILE, paths)
    provider = provider_for_image(image, paths)
    spec = DeskVMSpec(image=image, run_id="shell", online=args.online, keep=args.keep, warm=args.warm)
    machine = make_machine(spec, provider, paths)
    say_to_stderr(f"harness: starting a clean {image} VM ({'warm' if args.warm else 'cold'}; it waits for a "
                  "free slot while the host's VM cap is taken by other runs)")
    try:
        with hangup_as_interrupt(), machine:
            prepared = prepare(machine, target, online=args.online, install=args.install)
            say_to_stderr(f"harness: {machine.name} ready in {time.monotonic() - started:.1f} s, network "
                          f"{prepared.network}; `exit` ends the session and "
                          + ("keeps the VM" if args.keep else "removes the VM"))
            ssh = machine.ssh
            code = run_terminal(ssh.interactive_channel(), launch_command(), connected=lambda: ssh.alive)
    finally:
        if not machine.kept:
            remove_logs(paths, machine.name)
    if machine.kept:
        say_to_stderr(f"  re-enter: harness shell --name {machine.name}")
    return code


def reenter(name: str, paths: HostPaths) -> int:
    kept = find_kept(name, paths)
    with hangup_as_interrupt(), connect(kept) as ssh:
        code = run_terminal(ssh.interactive_channel(), launch_command(), connected=lambda: ssh.alive)
    say_to_stderr(f"harness: {name} stays (kept); remove it with `harness gc --name {name}`")
    return code
