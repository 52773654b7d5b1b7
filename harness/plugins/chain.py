"""The portability suite's fixture chain, one link per fixture (its options are
:class:`harness.run_options.RunOptions`):

    profile ─┐
    target ──┴─► deployment (VM, release installed) ─► installed
                     │                              └► server ─► client
                     └── install_twin (a second fresh VM: :mod:`harness.plugins.twin`)

Checks that cannot run because an earlier step failed (no install, no server) are skipped as
*blocked*, naming the check that reports the cause.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.completions import CompletionClient
from harness.errors import HarnessError, UsageError
from harness.install.first import Installed
from harness.journal import Journal
from harness.plugins.failures import failures
from harness.plugins.inputs import forced_variants
from harness.plugins.matrix import needs, safe_name
from harness.plugins.sizing import sized_for
from harness.plugins.twin import start_twin_beside, twins
from harness.plugins.vm import VMEnvironment, interrupted, machine_maker
from harness.profile import Profile
from harness.release import handed_over_digest, load_release
from harness.report.recorder import Reporter
from harness.run_options import run_options
from harness.server import Server, ServerFailed
from harness.suite.deployment import Deployment, UpgradeResult, open_deployment, run_upgrade
from harness.target import Target, TargetInputs, TargetSpec, resolve
from harness.vm.provider import VMOptions

_TARGETS = pytest.StashKey[dict[TargetSpec, Target]]()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, profile: Profile) -> Target:
    """One (release, image) cell of the matrix, with the tarball checked on the host (hashed once
    per run: `harness run` hands over the digests its preflight measured)."""
    spec: TargetSpec = request.param
    cache = request.config.stash.setdefault(_TARGETS, {})
    if spec not in cache:
        report: Reporter = request.getfixturevalue("report")
        try:
            cache[spec] = resolve(spec, profile, pin_dir=report.layout.root / "releases" / safe_name(spec.name),
                                  forced=forced_variants(request.config),
                                  known=handed_over_digest(spec.release_path))
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
    environment: VMEnvironment = request.getfixturevalue("vm_environment")
    try:
        provider = environment.provider(found.image)
        name, digest = provider.name, provider.image_digest(found.image) or ""
    except HarnessError:
        name, digest = "", ""  # the boot will fail and say why; the record stays incomplete
    options = VMOptions(warm=environment.warm)
    Journal(report.layout.root).write(TargetInputs.of(found, name, digest, options).record())


@pytest.fixture(scope="session")
def harness_journal(report: Reporter) -> Journal:
    """This process's run journal (the same file the report plugin writes)."""
    return Journal(report.layout.root)


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
    return run_upgrade(machine_maker(request), target, previous, report, lambda: interrupted(request))


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest, target: Target, report: Reporter,
               harness_journal: Journal) -> Iterator[Deployment]:
    """The target's primary VM with the release installed; torn down after its last check."""
    # Unless a check that needed only the second VM ran first and had it done already.
    twin_needed = needs(request, "second_vm", target.spec) and target.name not in twins(request.config)
    beside = start_twin_beside(request, target, report) if twin_needed else None
    # VMs that cannot run beside this one finish before it boots.
    for first, needed in (("upgrade_run", needs(request, "upgrade_run", target.spec)),
                          ("second_vm", twin_needed and beside is None)):
        if needed:
            try:
                request.getfixturevalue(first)
            except (HarnessError, pytest.skip.Exception):
                pass  # pytest keeps the error for the checks that need that VM; the rest go on
    failed = failures(request.config)
    with open_deployment(
        machine_maker(request), target, report, harness_journal,
        report.layout.evidence / safe_name(target.name),
        failed=lambda: failed.target_failed(target.name), interrupted=lambda: interrupted(request),
        size=beside or sized_for(request, target, 1),
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
