"""`harness run`: the portability suite against a release, in clean VMs.

    harness run                                   # in a checkout: the reference release on linux-debian12
    harness run --release dist/tiles-v0.4.18-x86_64-linux.tar.gz --profile tiles --image linux-debian12
    harness run --release a.tar.gz --release b.tar.gz -n 2      # a matrix, two VMs at once

A run is a short pipeline: resolve what to test (building the reference release and the base
images when they are missing) -> the pytest command line -> pytest in a child process, whose exit
code becomes this command's. The suite is the installed package ``harness.portability`` and pytest
runs in the current directory, so the caller's own pytest configuration and conftest apply.
Everything after ``--`` goes to pytest unchanged.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.profile import load_profile, select_profile
from harness.release import load_release
from harness.release_name import parse_release_name
from harness.report.results_space import check_results_dir
from harness.suite.pipeline import SUITE_PACKAGE
from harness.suite.reference import build_reference, default_release, release_dir

DEFAULT_IMAGE = "linux-debian12"


@dataclass(frozen=True)
class RunPlan:
    releases: tuple[Path, ...]
    profile: str
    images: tuple[str, ...]
    workers: int
    keep_vm: str
    results_dir: Path | None
    update_goldens: bool
    select: str | None
    pytest_args: tuple[str, ...]
    warm: bool = True  # --warm/--cold (harness.vm.qemu.warm)
    upgrade_from: Path | None = None  # the previous release, for the upgrade check
    conditions: tuple[str, ...] = ()  # the profile's install conditions to add ('all': every one)
    variants: tuple[str, ...] = ()  # --profile-variant: forced instead of picked by version and OS
    fail_fast: bool = False
    goldens_dir: Path | None = None  # where golden files are read and recorded


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run the portability suite on a release in clean VMs",
        description="Install a release offline in clean VMs, serve it and check its answers.",
    )
    parser.add_argument("--release", action="append", default=[], metavar="TARBALL",
                        help="release tarball (repeat for a matrix); default: the reference release, built if missing")
    parser.add_argument("--profile", default=None, metavar="NAME|FILE",
                        help="built-in profile name or a TOML file (default: reference)")
    parser.add_argument("--profile-variant", action="append", default=[], metavar="NAME", dest="variants",
                        help="apply this [[variant]] of the profile whatever the release's version and OS "
                        "(repeatable; replaces the variant picked automatically on the same axis)")
    parser.add_argument("--image", action="append", default=[], metavar="IMAGE",
                        help=f"base image (repeat for a matrix; default {DEFAULT_IMAGE}); Linux images are built if missing")
    parser.add_argument("-n", "--workers", type=int, default=0, metavar="N",
                        help="run N targets at once in N pytest-xdist workers (each target on its own VMs)")
    parser.add_argument("--keep-vm", default="never", choices=("never", "on-failure", "always"),
                        help="keep VMs after the run for a look inside (default: never)")
    parser.add_argument("--warm", dest="warm", action="store_true", default=True,
                        help="start VMs from a saved, booted machine where the provider can (default)")
    parser.add_argument("--cold", dest="warm", action="store_false", help="boot every VM from scratch")
    parser.add_argument("--results-dir", type=Path, default=None, metavar="DIR",
                        help="where results go (default: ./results)")
    parser.add_argument("--update-goldens", action="store_true", help="record golden answers instead of comparing")
    parser.add_argument("--goldens-dir", type=Path, default=None, metavar="DIR",
                        help="golden files under DIR/<profile>/<platform>.json (default: beside the profile)")
    parser.add_argument("--upgrade-from", type=Path, default=None, metavar="OLD_TARBALL",
                        help="the previous release: also check that upgrading from it leaves nothing old behind")
    parser.add_argument("--condition", action="append", default=[], metavar="NAME|all", dest="conditions",
                        help="also install under this [[conditions]] entry of the profile (repeatable; 'all')")
    parser.add_argument("-x", "--fail-fast", dest="fail_fast", action="store_true",
                        help="stop at the first failed or broken check (host-side ones run first) and "
                        "write the reports for what ran; by default every check runs")
    parser.add_argument("-k", dest="select", default=None, metavar="EXPR", help="only checks matching EXPR (pytest -k)")
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="extra pytest arguments after --")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    prepare(plan)
    return execute(plan)


def make_plan(args: argparse.Namespace) -> RunPlan:
    if args.workers < 0:
        raise UsageError(f"-n must be 0 or more, got {args.workers}")
    profile_name = args.profile or "reference"
    profile = load_profile(profile_name)  # fails now, not in a worker, if the profile is bad
    releases = [Path(r).expanduser().absolute() for r in args.release]
    if not releases:
        if profile.name != "reference":
            raise UsageError(f"the {profile.name} profile needs a release: pass --release PATH")
        releases = [reference_release()]
    upgrade_from = args.upgrade_from.expanduser().absolute() if args.upgrade_from else None
    for path in [*releases, *([upgrade_from] if upgrade_from else [])]:
        # Name, product and existence, before any VM boots, against the profile as resolved for
        # this release's version and OS (a backend suffix may be known to one variant only).
        name = parse_release_name(path.name)
        load_release(path, select_profile(profile, name.os, name.parsed, args.variants).release)
    check_results_dir((args.results_dir or Path.cwd() / "results").absolute())
    return RunPlan(
        releases=tuple(releases), profile=profile_name,
        images=tuple(args.image or [DEFAULT_IMAGE]), workers=args.workers, keep_vm=args.keep_vm,
        results_dir=args.results_dir, update_goldens=args.update_goldens, select=args.select,
        pytest_args=tuple(args.pytest_args), warm=args.warm, upgrade_from=upgrade_from,
        conditions=tuple(args.conditions), variants=tuple(args.variants), fail_fast=args.fail_fast,
        goldens_dir=args.goldens_dir.expanduser().absolute() if args.goldens_dir else None,
    )


def reference_release() -> Path:
    """The reference release of this checkout (built on first use); outside one, say what to pass."""
    if not release_dir().is_dir():
        raise UsageError(
            "no --release given, and the reference release exists only in a checkout of the harness repository",
            hint="pass the tarball to test: harness run --release PATH/TO/product-vX.Y.Z-ARCH-OS.tar.gz "
            "[--profile NAME|FILE] [--image IMAGE]",
        )
    found = default_release()
    if found is None:
        print("harness run: building the reference release (first run only)", file=sys.stderr)
        build_reference()
        found = default_release()
    if found is None:
        raise UsageError("the reference release build finished but left no tarball in its dist/ directory",
                         hint="run `python examples/reference_release/build.py` and read its output")
    return found


def prepare(plan: RunPlan) -> None:
    """Build missing Linux base images (cached by recipe hash: a no-op when current)."""
    from harness.config import HostPaths
    from harness.images import image_store

    store = image_store(HostPaths.from_env())
    known = set(store.known())
    for image in plan.images:
        if image in known:
            store.ensure(image, progress=lambda msg: print(f"harness run: {msg}", file=sys.stderr))


def pytest_argv(plan: RunPlan) -> list[str]:
    # Values ride in the same word as their option (--release=PATH): pytest picks its rootdir, and
    # with it the caller's configuration, from free-standing paths before the plugin is loaded.
    argv = [sys.executable, "-m", "pytest", "--pyargs", SUITE_PACKAGE, "-p", "no:cacheprovider", "-rA",
            f"--profile={plan.profile}", f"--keep-vm={plan.keep_vm}", "--warm" if plan.warm else "--cold"]
    argv += [f"--release={release}" for release in plan.releases]
    argv += [f"--profile-variant={variant}" for variant in plan.variants]
    argv += [f"--image={image}" for image in plan.images]
    if plan.workers:
        # loadgroup: every check of one target stays in one worker, so one VM serves them all. A
        # crashed worker is not replaced: its target's VM is gone with it, and the sign-off names
        # the checks it never ran instead of a replacement waiting on a group it cannot take.
        argv += ["-n", str(plan.workers), "--dist", "loadgroup", "--max-vms", str(max(2, plan.workers)),
                 "--max-worker-restart", "0"]
    if plan.results_dir is not None:
        argv.append(f"--results-dir={plan.results_dir}")
    if plan.update_goldens:
        argv.append("--update-goldens")
    if plan.goldens_dir is not None:
        argv.append(f"--goldens-dir={plan.goldens_dir}")
    if plan.upgrade_from is not None:
        argv.append(f"--upgrade-from={plan.upgrade_from}")
    argv += [f"--condition={condition}" for condition in plan.conditions]
    if plan.fail_fast:
        argv.append("-x")
    if plan.select:
        argv += ["-k", plan.select]
    return argv + list(plan.pytest_args)


def execute(plan: RunPlan) -> int:
    argv = pytest_argv(plan)
    print("harness run: " + " ".join(argv[1:]), file=sys.stderr)
    # Same process group: Ctrl-C reaches pytest, which tears its VMs down; we wait for it.
    process = subprocess.Popen(argv)
    # A SIGTERM for this process alone (a CI runner stopping the job) must not orphan pytest: it
    # is passed on, and this process waits while pytest removes its VMs, as for Ctrl-C.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signal.SIGTERM))
    try:
        try:
            return process.wait()
        except KeyboardInterrupt:
            return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
