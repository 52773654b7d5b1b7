"""The package's declared dependencies are the ones its code uses, no more and no fewer."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "harness"

# pytest plugins the harness uses through the options it gives pytest, not through an import:
# each with a pattern that must still occur in harness/ for the dependency to count as used.
USED_AS_PLUGIN = {
    "pytest-xdist": r'"--dist", "loadgroup"',  # harness run's -n N workers
    "allure-pytest": r"alluredir",  # the allure results the report plugin writes beside
}
# Imports that come with a declared dependency as its documented public home.
PROVIDED_BY = {"pydantic_core": "pydantic"}  # PydanticCustomError lives there; pydantic pins it


def declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}


def imported_modules() -> Iterator[tuple[str, Path]]:
    """Top-level names of the absolute imports in harness/, with a file that makes each."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                yield from ((alias.name.partition(".")[0], path) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.module.partition(".")[0], path


def third_party_imports() -> dict[str, Path]:
    return {name: path for name, path in imported_modules()
            if name not in sys.stdlib_module_names and name != "harness"}


@cache
def installed() -> Mapping[str, list[str]]:
    """Import name -> the installed distributions that provide it (slow: reads every RECORD)."""
    return packages_distributions()


def distributions_of(module: str) -> set[str]:
    return {canonicalize_name(d) for d in installed().get(module, [])}


def test_every_declared_dependency_is_used() -> None:
    imported = set().union(*(distributions_of(m) for m in third_party_imports()))
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    unused = []
    for dist in sorted(declared()):
        if dist in imported:
            continue
        pattern = USED_AS_PLUGIN.get(dist)
        if pattern is None or not re.search(pattern, source):
            unused.append(dist)
    assert not unused, f"declared in pyproject.toml but nothing in harness/ uses them: {unused}"


def test_every_third_party_import_is_declared() -> None:
    wanted = declared()
    undeclared = {}
    for module, path in third_party_imports().items():
        dists = distributions_of(module) or {module}
        if not dists & wanted and PROVIDED_BY.get(module) not in wanted:
            undeclared[module] = str(path.relative_to(REPO))
    assert not undeclared, f"imported in harness/ but not declared in pyproject.toml: {undeclared}"
