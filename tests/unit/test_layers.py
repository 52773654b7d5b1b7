"""The harness's packages stand in layers, and every import runs down them (or stays within one).

The import graph is read from the source with ``ast``: imports at module level, inside functions
and under ``if TYPE_CHECKING`` alike, so an import hidden in a function to dodge a cycle counts
as much as any other. Each top-level package or module of ``harness`` belongs to one layer of
:data:`LAYERS`; an import from a lower layer into a higher one fails the test with its file and
line. A new package must be given its place here.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import harness

PACKAGE_DIR = Path(harness.__file__).resolve().parent
ROOT = "harness"  # the package's own face (its version), with the ground layer

# From the ground up. Within a layer, parts may import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    # what every layer may use: errors, paths, the journal, the option set, release names
    (ROOT, "errors", "config", "bounded", "hashing", "text_table", "waiting", "journal",
     "release_name", "run_options"),
    # values read from files: the release profile; the report model and its renderers
    ("profile", "report"),
    ("ssh",),
    # a guest as the work in it sees it, and the release on the host
    ("guest", "release", "completions"),
    # work in a guest: install, serve, snapshot its tree, watch its traffic
    ("guest_tree", "egress", "server", "determinism", "install"),
    # the host: VM slots, run labels and the reaper, base images
    ("host", "images"),
    # VMs: the provider protocol, the providers, machines, warm starts
    ("vm",),
    # a target of the matrix, static inspection, goldens, the providers' stand-ins
    ("target", "inspect", "goldens", "testing"),
    ("checks", "preflight"),
    ("suite",),
    # what drives the layers below: the pytest plugins and their hooks, the interactive desk
    ("hookspecs", "plugins", "desk"),
    # the suite's check modules (collected by the plugins, imported by nothing)
    ("portability",),
    # entry points: the commands, and the pytest11 plugin that registers harness.plugins by name
    ("commands", "cli", "plugin"),
)

# Imports allowed to run up a layer while a change that removes them is under way. An entry that
# no longer matches an import fails test_no_pending_exception_is_stale: strike it.
PENDING: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    source: str  # the importing module
    target: str  # the imported module (a name imported from a package counts as the package)


def module_name(package_dir: Path, path: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(package_dir: Path) -> Iterator[Import]:
    """Every import of the package's own modules, wherever it stands in a file."""
    package = package_dir.name
    modules = {module_name(package_dir, p) for p in package_dir.rglob("*.py")}
    for path in sorted(package_dir.rglob("*.py")):
        source = module_name(package_dir, path)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for line, target in _targets(node, source, is_package, modules):
                if target == package or target.startswith(package + "."):
                    yield Import(path, line, source, target)


def _targets(node: ast.AST, source: str, is_package: bool, modules: set[str]) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the importing module's package upwards
            anchor = source.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            yield node.lineno, submodule if submodule in modules else base


def part_of(module: str) -> str:
    """The top-level package or module of ``harness`` a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_index(layers: Sequence[Sequence[str]]) -> dict[str, int]:
    return {part: level for level, parts in enumerate(layers) for part in parts}


def violations(found: Sequence[Import], layers: Sequence[Sequence[str]], root: Path,
               pending: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """One line per import that runs up a layer (or names a part no layer holds)."""
    level = layer_index(layers)
    problems = []
    for imp in found:
        here, there = part_of(imp.source), part_of(imp.target)
        where = f"{imp.path.relative_to(root)}:{imp.line}"
        if here not in level or there not in level:
            missing = here if here not in level else there
            problems.append(f"{where}: {missing!r} stands in no layer: give it one in LAYERS")
        elif level[there] > level[here] and (imp.source, imp.target) not in pending:
            problems.append(f"{where}: {imp.source} (layer {level[here] + 1}, {here}) imports "
                            f"{imp.target} (layer {level[there] + 1}, {there}), which stands above it")
    return list(dict.fromkeys(problems))  # one line for an import of several names


def test_every_import_runs_down_the_layers() -> None:
    problems = violations(list(imports_in(PACKAGE_DIR)), LAYERS, PACKAGE_DIR.parent, PENDING)
    assert not problems, "imports that run up a layer:\n" + "\n".join(problems)


def test_every_part_stands_in_one_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE_DIR.iterdir()
             if (p.is_file() and p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    declared = [part for layer in LAYERS for part in layer]
    assert len(declared) == len(set(declared)), "a part stands in two layers"
    assert sorted(parts - set(declared)) == []
    assert sorted(set(declared) - parts - {ROOT}) == [], "a layer names a part that is gone"


def test_no_pending_exception_is_stale() -> None:
    edges = {(imp.source, imp.target) for imp in imports_in(PACKAGE_DIR)}
    assert sorted(PENDING - edges) == [], "these imports are gone: strike them from PENDING"


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "harness"


def test_a_planted_import_up_a_layer_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    package = _plant(tmp_path, {
        "harness/__init__.py": "",
        "harness/errors.py": "class HarnessError(Exception): ...\n",
        "harness/ssh/__init__.py": "",
        "harness/ssh/endpoint.py": "from harness.errors import HarnessError\n",
        "harness/ssh/exec.py": """\
            from harness.errors import HarnessError


            def reporter():
                try:
                    from harness.vm.machine import Machine
                except ImportError:
                    return None
                return Machine
            """,
        "harness/vm/__init__.py": "",
        "harness/vm/provider.py": "from harness.ssh.endpoint import HarnessError\nfrom ..ssh import exec\n",
        "harness/vm/machine.py": "from . import provider\n",
    })
    layers = ((ROOT, "errors"), ("ssh",), ("vm",))
    found = list(imports_in(package))
    assert {(i.source, i.target) for i in found} >= {
        ("harness.vm.provider", "harness.ssh.exec"), ("harness.vm.machine", "harness.vm.provider")}
    assert violations(found, layers, tmp_path) == [
        ("harness/ssh/exec.py:6: harness.ssh.exec (layer 2, ssh) imports harness.vm.machine "
         "(layer 3, vm), which stands above it"),
    ]
    # The same import at module level, and one into a part no layer holds, are found as well.
    (package / "ssh" / "endpoint.py").write_text("from harness.errors import HarnessError\nimport harness.vm.provider\n"
                                                 "from harness import extra\n")
    (package / "extra.py").write_text("")
    problems = violations(list(imports_in(package)), layers, tmp_path)
    assert "harness/ssh/endpoint.py:2: harness.ssh.endpoint (layer 2, ssh) imports harness.vm.provider " \
           "(layer 3, vm), which stands above it" in problems
    assert "harness/ssh/endpoint.py:3: 'extra' stands in no layer: give it one in LAYERS" in problems
    # A pending exception passes that one import and no other.
    assert len(violations(list(imports_in(package)), layers, tmp_path,
                          frozenset({("harness.ssh.exec", "harness.vm.machine")}))) == len(problems) - 1
