"""The portability suite's pytest plugin: the target matrix and the fixture chain (its options are
:class:`harness.run_options.RunOptions`).

    profile ─┐
    target ──┴─► deployment (VM, release installed) ─► installed
                     │                              └► server ─► client
                     └── install_twin (a second fresh VM: beside the primary one when a VM slot
                                   is free for it, else done first when a check needs it)

``--release`` and ``--image`` may each be repeated; every (release, image) pair is one ``target``
parameter, session-scoped, so one VM serves every check of that target. Under ``pytest -n N``
all checks of one target go to one worker (an ``xdist_group`` per target; plain ``-n`` is turned
into ``--dist loadgroup``), so N targets run in N VMs at once. Checks that cannot run because an earlier step
failed (no install, no server) are skipped as *blocked*, naming the check that reports the cause.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.completions import CompletionClient
from harness.errors import HarnessError, UsageError
from harness.host.sizing import GuestSize, guest_size
from harness.install import Installed
from harness.journal import GenericRecord, Journal
from harness.profile import (
    ConditionSpec,
    Profile,
    load_profile,
    resolve_profile_path,
    select_profile,
)
from harness.release import load_release, parse_release_name
from harness.report.recorder import Reporter
from harness.run_options import (
    DEFAULT_PROFILE,
    RunOptions,
    is_portability_run,
    run_options,
    utility_session,
)
from harness.server import Server, ServerFailed
from harness.suite.deployment import (
    Deployment,
    TwinResult,
    UpgradeResult,
    open_deployment,
    run_twin,
    run_upgrade,
)
from harness.suite.overlap import BackgroundTwin, FinishedTwin, TwinWork
from harness.suite.reference import default_release
from harness.suite.stages import STAGE_MARK, stage_of
from harness.suite.target import Target, TargetInputs, TargetSpec, matrix, resolve
from harness.vm.provider import VMOptions

GOLDENS = "goldens"  # beside a profile's TOML file: its approved answers, <profile>/<platform>.json
NO_RELEASE = "no-release"
TARGET_FIXTURE = "target"
LOADGROUP_KEY = "harness_loadgroup"

_failed_targets = pytest.StashKey[set[str]]()
_targets = pytest.StashKey[dict[TargetSpec, Target]]()
_twins = pytest.StashKey[dict[str, BackgroundTwin | FinishedTwin]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{STAGE_MARK}(stage): how far along the fixture chain a check goes")
    config.stash[_failed_targets] = set()
    config.stash[_targets] = {}
    config.stash[_twins] = {}
    if getattr(config.option, "dist", None) == "load" and not _dist_given(config):
        # `-n N` alone means xdist's "load": it would scatter one target's checks over every
        # worker, each booting and installing its own VM. "loadgroup" keeps a target's checks
        # together and spreads everything else exactly as "load" does.
        config.option.dist = "loadgroup"
    if getattr(config, "workerinput", {}).get(LOADGROUP_KEY):
        # A worker parses the original command line (plain -n), so it must be told.
        config.option.loadgroup = True
    if is_portability_run(config):
        check_inputs(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker when it turned plain ``-n`` into loadgroup."""
    node.workerinput[LOADGROUP_KEY] = node.config.option.dist == "loadgroup"


def check_inputs(config: pytest.Config) -> None:
    """A bad --profile or --release stops the run at once with the reason (exit code 4), instead
    of turning every check into an error after collection."""
    if config.option.help or getattr(config.option, "version", False):
        return
    try:
        profile = load_profile(_profile_name(run_options(config)))
        for path in run_options(config).release:
            release = Path(path).expanduser()
            if not release.is_file():
                raise UsageError(f"release tarball {release} does not exist",
                                 hint="pass the path of a built .tar.gz with --release")
            found = parse_release_name(release.name)
            select_profile(profile, found.os, found.parsed, forced_variants(config))  # unknown names fail here
            if found.product != profile.release.product:
                raise UsageError(f"{release.name} is a {found.product!r} release but the {profile.name} "
                                 f"profile expects {profile.release.product!r}", hint="pick the matching --profile")
        chosen_conditions(config, profile)
    except UsageError as exc:
        raise pytest.UsageError(f"harness: {exc}") from None


def forced_variants(config: pytest.Config) -> tuple[str, ...]:
    return run_options(config).variants


def _profile_name(options: RunOptions) -> str:
    return options.profile or DEFAULT_PROFILE


def _dist_given(config: pytest.Config) -> bool:
    return any(str(a) == "-d" or str(a).startswith("--dist") for a in config.invocation_params.args)


# -- the matrix ----------------------------------------------------------------------------------


def release_paths(config: pytest.Config) -> list[Path]:
    given = run_options(config).release
    if given:
        return [Path(p).expanduser().absolute() for p in given]
    found = default_release(config.rootpath)
    return [found] if found else []


def images(config: pytest.Config) -> list[str]:
    return list(run_options(config).images)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if TARGET_FIXTURE not in metafunc.fixturenames:
        return
    specs = matrix(release_paths(metafunc.config), images(metafunc.config))
    if not specs:
        # No release given and none built: collection then stops with a usage error that says so.
        metafunc.parametrize(TARGET_FIXTURE, [None], indirect=True, scope="session", ids=[NO_RELEASE])
        return
    metafunc.parametrize(TARGET_FIXTURE, specs, indirect=True, scope="session", ids=[s.name for s in specs])


@pytest.hookimpl(tryfirst=True)  # before xdist's worker turns xdist_group marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks = [item for item in items if TARGET_FIXTURE in getattr(item, "fixturenames", ())]
    if utility_session(config):
        checks = []  # --collect-only and friends list what there is, release or not
    if checks and not is_portability_run(config):
        raise pytest.UsageError(
            f"harness: {checks[0].nodeid} checks a release (it uses the harness's release fixtures), "
            "but this session names none: pass --release PATH/TO/product.tar.gz (and --profile NAME|FILE)")
    if any(_spec_of(item) is None for item in checks):
        raise pytest.UsageError(
            "harness: no release to test: pass --release PATH/TO/product.tar.gz (and --profile NAME|FILE); "
            "the reference release is the default only in a checkout of the harness repository, once "
            "built (python examples/reference_release/build.py)")
    for item in items:
        stage = stage_of(getattr(item, "fixturenames", ()))
        if stage:
            item.add_marker(getattr(pytest.mark, STAGE_MARK)(stage))
        spec = _spec_of(item)
        if spec is not None:
            # With --dist loadgroup every check of one target runs in one worker, on one VM.
            # xdist reads the group back from the node id after its last "@": keep names plain.
            item.add_marker(pytest.mark.xdist_group(name=_safe(spec.name).replace(".", "_")))


def _spec_of(item: pytest.Item) -> TargetSpec | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(TARGET_FIXTURE) if callspec is not None else None
    return value if isinstance(value, TargetSpec) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    spec = _spec_of(item)
    if spec is not None and report.failed:
        item.config.stash[_failed_targets].add(spec.name)
    return report


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    """The release profile named by --profile (validated before any VM boots)."""
    return load_profile(_profile_name(run_options(pytestconfig)))


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, profile: Profile) -> Target:
    """One (release, image) cell of the matrix, with the tarball checked on the host."""
    spec: TargetSpec = request.param
    cache = request.config.stash[_targets]
    if spec not in cache:
        report: Reporter = request.getfixturevalue("report")
        try:
            cache[spec] = resolve(spec, profile, pin_dir=report.layout.root / "releases" / _safe(spec.name),
                                  forced=forced_variants(request.config))
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
        found = cache[spec]
        _record_inputs(request, found, report)
        report.describe_release(tarball=found.release.filename, version=found.release.name.version,
                                sha256=found.release.sha256, profile=profile.name)
        report.describe_image(found.name, image_id=found.image)
    return cache[spec]


def _record_inputs(request: pytest.FixtureRequest, found: Target, report: Reporter) -> None:
    """The target's exact inputs into the journal, for ``harness repro``."""
    environment = request.getfixturevalue("vm_environment")
    try:
        provider = environment.provider(found.image)
        name, digest = provider.name, provider.image_digest(found.image) or ""
    except HarnessError:
        name, digest = "", ""  # the boot will fail and say why; the record stays incomplete
    options = VMOptions(warm=environment.warm)
    Journal(report.layout.root).write(TargetInputs.of(found, name, digest, options).record())


@pytest.fixture(scope="session")
def harness_journal(report: Reporter) -> Journal:
    """This process's run journal (the same file the report area writes)."""
    return Journal(report.layout.root)


def _interrupted(request: pytest.FixtureRequest) -> bool:
    return request.session.exitstatus == pytest.ExitCode.INTERRUPTED or bool(request.session.shouldstop)


def _machine_maker(request: pytest.FixtureRequest) -> Any:
    environment = request.getfixturevalue("vm_environment")
    return lambda image, options, slot=None: environment.machine(image, options=options, slot=slot)


def _needs(request: pytest.FixtureRequest, fixture: str, spec: TargetSpec) -> bool:
    return any(fixture in getattr(item, "fixturenames", ()) and _spec_of(item) == spec
               for item in request.session.items)


def chosen_conditions(config: pytest.Config, profile: Profile) -> tuple[ConditionSpec, ...]:
    """The profile's install conditions named by --condition ('all': every one)."""
    wanted = [n for given in run_options(config).conditions for n in given.split(",") if n]
    if "all" in wanted:
        return profile.conditions
    known = {c.name: c for c in profile.conditions}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise pytest.UsageError(f"harness: --condition {', '.join(unknown)}: the {profile.name} profile declares "
                                f"{', '.join(known) or 'no [[conditions]]'}")
    return tuple(known[n] for n in dict.fromkeys(wanted))


def _twin_work(request: pytest.FixtureRequest, target: Target, report: Reporter, size: GuestSize) -> TwinWork:
    evidence = report.layout.evidence / _safe(target.name) / "twin"
    conditions = chosen_conditions(request.config, target.profile)
    return lambda make, timer, on_installed: run_twin(make, target, timer, lambda: _interrupted(request), evidence,
                                                      conditions, on_installed, size)


def _guest_size(request: pytest.FixtureRequest, target: Target, vms_here: int) -> GuestSize:
    """Each VM's size when this process runs ``vms_here`` at once (and every xdist worker as many);
    recorded among the run's facts."""
    environment = request.getfixturevalue("vm_environment")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    size = guest_size(min(environment.max_vms, workers * vms_here))
    forced = run_options(request.config).vm_cpus
    if forced:
        size = GuestSize(forced, size.memory_mb, f"--vm-cpus {forced}")
    environment.journal.write(GenericRecord(kind="meta", target=target.image,
                                            data={"extra": {f"vm size ({target.name})": size.describe()}}))
    return size


@pytest.fixture(scope="session")
def second_vm(request: pytest.FixtureRequest, target: Target, report: Reporter) -> BackgroundTwin | FinishedTwin:
    """The second fresh VM's work: already running beside the first VM when the first VM's
    set-up found a VM slot for it, else done now, before the first VM boots."""
    twins = request.config.stash[_twins]
    if target.name not in twins:
        work = _twin_work(request, target, report, _guest_size(request, target, 1))
        twins[target.name] = FinishedTwin(work(_machine_maker(request), report, lambda installed: None))
    return twins[target.name]


# Function-scoped on purpose: pytest sets session fixtures up before function ones, so the first
# VM's set-up (which starts the second VM beside it) comes before anything waits for the second VM.
@pytest.fixture
def install_twin(second_vm: BackgroundTwin | FinishedTwin) -> TwinResult:
    """The same release installed in a second fresh VM (then reinstalled, served, installed under
    the chosen conditions, and uninstalled)."""
    return second_vm.result()


@pytest.fixture
def twin_installed(second_vm: BackgroundTwin | FinishedTwin) -> Installed:
    """The second VM's first install alone: a check that compares installs waits for no more."""
    return second_vm.installed()


def _start_twin_beside(request: pytest.FixtureRequest, target: Target, report: Reporter) -> GuestSize | None:
    """Start the twin in the background when a VM slot is free for it right now: the size both
    VMs then get, or None (the twin runs first, alone)."""
    environment = request.getfixturevalue("vm_environment")
    if environment.max_vms < 2:  # --max-vms 1: one VM at a time, the twin first
        return None
    slot = environment.spare_slot(target.image)
    if slot is None:
        return None
    size = _guest_size(request, target, 2)
    background = BackgroundTwin.start(target.name, slot, _machine_maker(request), environment.journal,
                                      _twin_work(request, target, report, size))
    request.config.stash[_twins][target.name] = background
    request.addfinalizer(background.cancel)
    return size


@pytest.fixture(scope="session")
def upgrade_run(request: pytest.FixtureRequest, target: Target, report: Reporter) -> UpgradeResult:
    """The previous release (--upgrade-from) installed in a fresh VM, then this one over it."""
    given = run_options(request.config).upgrade_from
    if given is None:
        pytest.skip("no --upgrade-from OLD_TARBALL given: nothing to upgrade from")
    try:
        previous = load_release(given.expanduser().absolute(), target.profile.release)
    except UsageError as exc:
        raise pytest.UsageError(f"harness: --upgrade-from: {exc}") from None
    return run_upgrade(_machine_maker(request), target, previous, report, lambda: _interrupted(request))


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest, target: Target, report: Reporter,
               harness_journal: Journal) -> Iterator[Deployment]:
    """The target's primary VM with the release installed; torn down after its last check."""
    # Unless a check that needed only the second VM ran first and had it done already.
    twin_needed = _needs(request, "second_vm", target.spec) and target.name not in request.config.stash[_twins]
    beside = _start_twin_beside(request, target, report) if twin_needed else None
    # VMs that cannot run beside this one finish before it boots.
    for first, needed in (("upgrade_run", _needs(request, "upgrade_run", target.spec)),
                          ("second_vm", twin_needed and beside is None)):
        if needed:
            try:
                request.getfixturevalue(first)
            except (HarnessError, pytest.skip.Exception):
                pass  # pytest keeps the error for the checks that need that VM; the rest go on
    failed = request.config.stash[_failed_targets]
    with open_deployment(
        _machine_maker(request), target, report, harness_journal,
        report.layout.evidence / _safe(target.name),
        failed=lambda: target.name in failed, interrupted=lambda: _interrupted(request),
        size=beside or _guest_size(request, target, 1),
    ) as deployed:
        report.volatile(target.name, vm=str(deployed.machine.name))
        yield deployed


@pytest.fixture
def installed(deployment: Deployment) -> Installed:
    """The install; checks that need a working one are skipped as blocked when it failed."""
    run = deployment.installed.installer
    if not run.ok:
        state = "timed out" if run.timed_out else f"exited with {run.exit_code}"
        pytest.skip(f"blocked: the installer {state} (reported by install_offline)")
    return deployment.installed


@pytest.fixture
def server(deployment: Deployment, installed: Installed) -> Server:
    """The release's server, running and healthy (restarted if a check stopped it)."""
    try:
        return deployment.server()
    except ServerFailed as exc:
        # The failure itself is server_starts' finding; here it only blocks the check.
        pytest.skip(f"blocked: the server did not start (reported by server_starts): {exc.message}")


@pytest.fixture
def client(deployment: Deployment, server: Server) -> Iterator[CompletionClient]:
    """Completions from the running server in the profile's API flavour."""
    with deployment.completions_from(server) as completions:
        deployment.warm_up(completions)
        yield completions


@pytest.fixture(scope="session")
def goldens_dir(pytestconfig: pytest.Config) -> Path:
    """``--goldens-dir``, else ``goldens/`` beside the profile's file (the built-in profiles' own
    goldens ship in the package; recording into an installed package needs ``--goldens-dir``)."""
    options = run_options(pytestconfig)
    if options.goldens_dir is not None:
        return options.goldens_dir.absolute()
    found = resolve_profile_path(_profile_name(options)).resolve().parent / GOLDENS
    if options.update_goldens and found.is_relative_to(Path(sys.prefix).resolve()):
        raise UsageError(f"--update-goldens would write into the installed harness package ({found})",
                         hint="pass --goldens-dir DIR to record your own goldens, and use it for later runs")
    return found


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
