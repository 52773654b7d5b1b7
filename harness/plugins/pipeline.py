"""How the suite is collected, and sorted into the order of :data:`harness.suite.pipeline.PIPELINE`
(which sessions are portability runs is :func:`harness.run_options.is_portability_run`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.suite.pipeline import PIPELINE, SUITE_DIR, place_in_stage, stage_index

# Fixtures every check of a release depends on (directly or through deployment/installed/...).
RELEASE_FIXTURE = "target"


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
        place = place_in_stage(item)
        if PIPELINE[stage].on_host:
            return (0, stage, place, 0)
        key = _target_key(item)
        return (1, targets.get(key, len(targets)) if key is not None else len(targets), stage, place)

    items.sort(key=order)


def _target_key(item: pytest.Item) -> object | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(RELEASE_FIXTURE) if callspec is not None else None
