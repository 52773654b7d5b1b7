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
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from harness.config import HostPaths
from harness.errors import UsageError
from harness.preflight import check_run
from harness.profile import load_profile
from harness.release import DIGESTS_ENV, Release, digest_handover
from harness.report.results_dir.space import check_results_dir
from harness.run_options import (
    DEFAULT_IMAGE,
    DEFAULT_PROFILE,
    DEFAULT_RESULTS,
    SUITE_PACKAGE,
    RunOptions,
    add_to_argparse,
)
from harness.suite.reference import build_reference, default_release, release_dir


@dataclass(frozen=True)
class RunPlan:
    options: RunOptions  # what the plugin reads, with the releases, profile and images resolved
    workers: int
    select: str | None
    pytest_args: tuple[str, ...]
    fail_fast: bool = False
    checked: tuple[Release, ...] = ()  # the releases as the preflight read them (their sha256)

    @property
    def releases(self) -> tuple[Path, ...]:
        return self.options.release

    @property
    def images(self) -> tuple[str, ...]:
        return self.options.images


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run the portability suite on a release in clean VMs",
        description="Install a release offline in clean VMs, serve it and check its answers.",
    )
    add_to_argparse(parser)  # the options the plugin reads too; below, pytest's own ones
    parser.add_argument("-n", "--workers", type=int, default=0, metavar="N",
                        help="run N targets at once in N pytest-xdist workers (each target on its own VMs)")
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
    profile_name = args.profile or DEFAULT_PROFILE
    profile = load_profile(profile_name)  # fails now, not in a worker, if the profile is bad
    releases = [Path(r).expanduser().absolute() for r in args.release]
    if not releases:
        if profile.name != "reference":
            raise UsageError(f"the {profile.name} profile needs a release: pass --release PATH")
        releases = [reference_release()]
    upgrade_from = args.upgrade_from.expanduser().absolute() if args.upgrade_from else None
    check_results_dir((args.results_dir or Path.cwd() / DEFAULT_RESULTS).absolute())
    # Before pytest, a VM or a results file: a bad input costs seconds and leaves nothing behind.
    checked = check_run(releases, args.image or [DEFAULT_IMAGE], profile, HostPaths.from_env(), args.variants,
                        upgrade_from)
    given = RunOptions.from_namespace(args)
    options = replace(given, release=tuple(releases), profile=profile_name, image=given.images,
                      upgrade_from=upgrade_from,
                      goldens_dir=given.goldens_dir.expanduser().absolute() if given.goldens_dir else None)
    return RunPlan(options=options, workers=args.workers, select=args.select,
                   pytest_args=tuple(args.pytest_args), fail_fast=args.fail_fast, checked=tuple(checked))


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
    argv = [sys.executable, "-m", "pytest", "--pyargs", SUITE_PACKAGE, "-p", "no:cacheprovider", "-rA",
            *plan.options.pytest_argv()]
    if plan.workers:
        # loadgroup: every check of one target stays in one worker, so one VM serves them all. A
        # crashed worker is not replaced: its target's VM is gone with it, and the sign-off names
        # the checks it never ran instead of a replacement waiting on a group it cannot take.
        argv += ["-n", str(plan.workers), "--dist", "loadgroup", "--max-vms", str(max(2, plan.workers)),
                 "--max-worker-restart", "0"]
    if plan.fail_fast:
        argv.append("-x")
    if plan.select:
        argv += ["-k", plan.select]
    return argv + list(plan.pytest_args)


def execute(plan: RunPlan) -> int:
    argv = pytest_argv(plan)
    print("harness run: " + " ".join(argv[1:]), file=sys.stderr)
    # The preflight read every tarball whole: the child trusts those digests while the files stand still.
    env = {**os.environ, DIGESTS_ENV: digest_handover(plan.checked)}
    # Same process group: Ctrl-C reaches pytest, which tears its VMs down; we wait for it.
    process = subprocess.Popen(argv, env=env)
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
