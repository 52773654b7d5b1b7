"""Which pytest sessions are portability runs, how the suite is found, and the order it runs in.

A session is a *portability run* when its command line names the suite (``pytest --pyargs
harness.portability``, a path inside the installed suite) or asks for a release or a results
directory (``--release``, ``--results-dir``). Only such a run writes ``results/`` and prints a
sign-off: the plugin is installed in a venv, and every other pytest session in it (the product's
unit tests, the harness's own tests) must run as if it were not there, apart from offering its
fixtures.

The suite runs as a release manager reads it: what can be judged on the host first (release,
static), then each target's VM work in the order it happens (install and what it left, server,
determinism with the sockets the serving holds, goldens, the second VM's reinstall, uninstall),
and egress last because it judges everything the guest did before it. A
user's own checks in the same session run after the built-in ones and before egress, so their
traffic is judged too.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness.portability

SUITE_PACKAGE = harness.portability.__name__
SUITE_DIR = Path(harness.portability.__file__).resolve().parent
# Options that only make sense for a portability run; giving one makes the session one.
RUN_OPTIONS: tuple[str, ...] = ("release", "harness_results_dir")
# Fixtures every check of a release depends on (directly or through deployment/installed/...).
RELEASE_FIXTURE = "target"

_active = pytest.StashKey[bool]()


@dataclass(frozen=True)
class Stage:
    name: str
    modules: tuple[str, ...]  # suite module names (without .py) whose checks form this stage
    on_host: bool = False  # judged on the host: runs before any target's VM work


PIPELINE: tuple[Stage, ...] = (
    Stage("release", ("test_release",), on_host=True),
    Stage("static", ("test_static",), on_host=True),
    Stage("install", ("test_install", "test_tree_hygiene", "test_build_host", "test_native")),
    Stage("server", ("test_server",)),
    Stage("macos", ("test_macos",)),
    Stage("determinism", ("test_determinism", "test_sampling", "test_listening")),
    Stage("goldens", ("test_goldens",)),
    # The second VM's reinstall and install conditions: read once it is done, which it is by now
    # when it ran beside the first VM.
    Stage("second install", ("test_reinstall", "test_conditions")),
    Stage("uninstall", ("test_uninstall",)),
    Stage("more", ()),  # the user's own checks and any suite module not placed above
    Stage("egress", ("test_egress",)),
)
_STAGE_OF_MODULE = {module: index for index, stage in enumerate(PIPELINE) for module in stage.modules}
# Within a stage, modules run in the order the stage lists them (the install's own verdict first).
_PLACE_IN_STAGE = {module: place for stage in PIPELINE for place, module in enumerate(stage.modules)}
_MORE = next(index for index, stage in enumerate(PIPELINE) if stage.name == "more")


def stage_index(item: pytest.Item) -> int:
    path = Path(str(getattr(item, "path", "")))
    if path.parent == SUITE_DIR:
        return _STAGE_OF_MODULE.get(path.stem, _MORE)
    return _MORE


# -- is this session a portability run? ----------------------------------------------------------


def names_the_suite(config: pytest.Config) -> bool:
    """True when a command-line argument (or testpaths entry) collects the suite."""
    for arg in config.args:
        where = _argument_path(str(arg).split("::", 1)[0], config)
        if where is None:
            continue
        if where == SUITE_DIR or SUITE_DIR in where.parents:
            return True
        # An ancestor collects it too, unless the suite sits in a virtualenv pytest skips.
        if where in SUITE_DIR.parents and not SUITE_DIR.is_relative_to(Path(sys.prefix).resolve()):
            return True
    return False


def _argument_path(arg: str, config: pytest.Config) -> Path | None:
    if config.option.pyargs and arg and "/" not in arg:
        try:
            spec = importlib.util.find_spec(arg)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            if spec.submodule_search_locations:
                return Path(next(iter(spec.submodule_search_locations))).resolve()
            if spec.origin:
                return Path(spec.origin).resolve()
    try:
        return (config.invocation_params.dir / arg).resolve()
    except (OSError, ValueError):
        return None


def utility_session(config: pytest.Config) -> bool:
    """--help, --collect-only, --fixtures and friends: they run no checks."""
    option = config.option
    names = ("help", "version", "collectonly", "showfixtures", "show_fixtures_per_test", "markers")
    return any(getattr(option, name, False) for name in names)


def is_portability_run(config: pytest.Config) -> bool:
    """Decided once per session (at configure time, before any results are touched)."""
    if _active not in config.stash:
        config.stash[_active] = not utility_session(config) and (
            names_the_suite(config)
            or any(config.getoption(name, default=None) for name in RUN_OPTIONS)
        )
    return config.stash[_active]


# -- plugin hooks ---------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in this repository's pyproject: a user's --strict-markers must accept them.
    config.addinivalue_line("markers", "vm: needs a real VM (QEMU); slow under software emulation")
    config.addinivalue_line("markers", "portability: a check of the portability suite")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """The suite's modules are collected whatever ``python_files`` the caller's config sets."""
    if file_path.parent != SUITE_DIR or not file_path.name.startswith("test_") or file_path.suffix != ".py":
        return None
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it whatever the patterns say
    patterns = parent.config.getini("python_files")
    if any(file_path.match(pattern) for pattern in patterns):
        return None  # pytest's own python plugin collects it
    module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
    return module


@pytest.hookimpl(trylast=True)  # after pytest grouped items by their session-scoped parameters
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not any(Path(str(getattr(item, "path", ""))).parent == SUITE_DIR for item in items):
        return
    targets: dict[object, int] = {}
    for item in items:
        key = _target_key(item)
        if key is not None:
            targets.setdefault(key, len(targets))

    def order(item: pytest.Item) -> tuple[int, int, int, int]:
        stage = stage_index(item)
        place = _PLACE_IN_STAGE.get(Path(str(getattr(item, "path", ""))).stem, 0)
        if PIPELINE[stage].on_host:
            return (0, stage, place, 0)
        key = _target_key(item)
        return (1, targets.get(key, len(targets)) if key is not None else len(targets), stage, place)

    items.sort(key=order)


def _target_key(item: pytest.Item) -> object | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(RELEASE_FIXTURE) if callspec is not None else None
