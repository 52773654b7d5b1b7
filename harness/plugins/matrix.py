"""The target matrix: every (``--release``, ``--image``) pair is one session-scoped ``target``
parameter, so one VM serves every check of that target. Under ``pytest -n N`` all checks of one
target go to one worker (an ``xdist_group`` per target; plain ``-n`` is turned into ``--dist
loadgroup``), so N targets run in N VMs at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.run_options import is_portability_run, run_options, utility_session
from harness.suite.reference import default_release
from harness.suite.stages import STAGE_MARK, stage_of
from harness.target import TargetSpec, matrix

NO_RELEASE = "no-release"
TARGET_FIXTURE = "target"
LOADGROUP_KEY = "harness_loadgroup"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{STAGE_MARK}(stage): how far along the fixture chain a check goes")
    if getattr(config.option, "dist", None) == "load" and not _dist_given(config):
        # `-n N` alone means xdist's "load": it would scatter one target's checks over every
        # worker, each booting and installing its own VM. "loadgroup" keeps a target's checks
        # together and spreads everything else exactly as "load" does.
        config.option.dist = "loadgroup"
    if getattr(config, "workerinput", {}).get(LOADGROUP_KEY):
        # A worker parses the original command line (plain -n), so it must be told.
        config.option.loadgroup = True


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker when it turned plain ``-n`` into loadgroup."""
    node.workerinput[LOADGROUP_KEY] = node.config.option.dist == "loadgroup"


def _dist_given(config: pytest.Config) -> bool:
    return any(str(a) == "-d" or str(a).startswith("--dist") for a in config.invocation_params.args)


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
    if any(spec_of(item) is None for item in checks):
        raise pytest.UsageError(
            "harness: no release to test: pass --release PATH/TO/product.tar.gz (and --profile NAME|FILE); "
            "the reference release is the default only in a checkout of the harness repository, once "
            "built (python examples/reference_release/build.py)")
    for item in items:
        stage = stage_of(getattr(item, "fixturenames", ()))
        if stage:
            item.add_marker(getattr(pytest.mark, STAGE_MARK)(stage))
        spec = spec_of(item)
        if spec is not None:
            # With --dist loadgroup every check of one target runs in one worker, on one VM.
            # xdist reads the group back from the node id after its last "@": keep names plain.
            item.add_marker(pytest.mark.xdist_group(name=safe_name(spec.name).replace(".", "_")))


def spec_of(item: pytest.Item) -> TargetSpec | None:
    """The matrix cell a check runs on, or None for a test outside the matrix."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(TARGET_FIXTURE) if callspec is not None else None
    return value if isinstance(value, TargetSpec) else None


def needs(request: pytest.FixtureRequest, fixture: str, spec: TargetSpec) -> bool:
    """Whether any check of the session on ``spec`` asks for ``fixture``."""
    return any(fixture in getattr(item, "fixturenames", ()) and spec_of(item) == spec
               for item in request.session.items)


def safe_name(name: str) -> str:
    """A target's name as a directory or group name."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
