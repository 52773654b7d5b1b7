"""How the suite is collected, and the order it runs in (which sessions are portability runs is
:func:`harness.run_options.is_portability_run`).

The suite runs as a release manager reads it: what can be judged on the host first (release,
static), then each target's VM work in the order it happens (install and what it left, server,
determinism with the sockets the serving holds, goldens, the second VM's reinstall, uninstall),
and egress last because it judges everything the guest did before it. A
user's own checks in the same session run after the built-in ones and before egress, so their
traffic is judged too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.run_options import suite_dir

SUITE_DIR = suite_dir()
# Fixtures every check of a release depends on (directly or through deployment/installed/...).
RELEASE_FIXTURE = "target"


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


# -- plugin hooks ---------------------------------------------------------------------------------


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
