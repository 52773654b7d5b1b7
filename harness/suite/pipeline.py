"""The order the suite runs in (the hooks that collect and sort it are
:mod:`harness.plugins.pipeline`).

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


def place_in_stage(item: pytest.Item) -> int:
    """Where the item's module stands in its stage's list (0 for a module the stage does not list)."""
    return _PLACE_IN_STAGE.get(Path(str(getattr(item, "path", ""))).stem, 0)
