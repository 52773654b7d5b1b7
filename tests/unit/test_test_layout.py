"""The test tree's own rules, checked before they break a CI run.

pytest imports test modules by basename (rootdir-relative "rootdir" import mode, no packages),
so two files called ``test_x.py`` in different folders abort collection of the whole run.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name == "conftest.py" or "__pycache__" in path.parts:
            continue
        seen[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each pair (e.g. suffix _unit): {clashes}"
