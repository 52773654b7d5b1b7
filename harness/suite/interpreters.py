"""Does the installed release lean on an interpreter the clean machine does not have?

The base image has no Python at all, so a release that calls a system ``python3`` fails there;
this module finds the evidence and names it: scripts whose ``#!`` line points at an interpreter
outside the release, and "not found" errors for a Python in the installer's or server's output.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from harness.install import Guest

# Interpreters every clean machine has; a shell script is portable enough.
SYSTEM_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
PYTHONISH = re.compile(r"^(python|pypy|pythonw)[0-9.]*$")
NOT_FOUND = re.compile(
    r"(?P<name>(?:/\S*/)?(?:python|pypy)[0-9.]*)\S*:\s*(?:command )?not found"
    r"|(?:env|exec|sh|bash):\s*'?(?P<env>(?:python|pypy)[0-9.]*)'?:\s*No such file or directory",
    re.IGNORECASE,
)
SHEBANG_SCAN_TIMEOUT_S = 300.0
# Inside an installed Python library a shebang is inert: nothing runs those files directly
# (numpy ships an executable numpy/testing/print_coercion_tables.py with `env python3`, for one).
LIBRARY_DIRS = re.compile(r"/(site-packages|dist-packages)/|/lib/python[0-9.]+/")


@dataclass(frozen=True)
class Shebang:
    path: str
    line: str

    @property
    def interpreter(self) -> str:
        """The program the kernel (or env) ends up looking for."""
        parts = self.line[2:].strip().split()
        if not parts:
            return ""
        program = parts[0]
        if posixpath.basename(program) == "env":
            rest = [p for p in parts[1:] if not p.startswith("-") and "=" not in p]
            return rest[0] if rest else ""
        return program


def scan_shebangs(guest: Guest, roots: Sequence[str]) -> list[Shebang]:
    """Every executable file under ``roots`` that starts with ``#!``, with its first line
    (Python library directories included; :func:`runnable` tells those apart)."""
    quoted = " ".join(shlex.quote(r) for r in roots)
    script = (
        f"find {quoted} -type f -perm -u+x 2>/dev/null | while IFS= read -r f; do "
        "head -c 2 \"$f\" 2>/dev/null | grep -q '^#!' && printf '%s\\t%s\\n' \"$f\" \"$(head -n 1 \"$f\")\"; "
        "done; true"
    )
    result = guest.run(script, timeout=SHEBANG_SCAN_TIMEOUT_S)
    found = []
    for line in result.stdout.splitlines():
        path, _, first = line.partition("\t")
        if first.startswith("#!"):
            found.append(Shebang(path, first))
    return found


def runnable(shebangs: Sequence[Shebang]) -> tuple[list[Shebang], list[Shebang]]:
    """(scripts a release can run, inert ones inside Python library directories)."""
    library = [s for s in shebangs if LIBRARY_DIRS.search(s.path)]
    return [s for s in shebangs if s not in library], library


def foreign_interpreters(shebangs: Sequence[Shebang], roots: Sequence[str],
                         exists: dict[str, bool]) -> list[str]:
    """Problems: Python interpreters outside the release, and interpreters missing in the guest.

    ``exists`` maps each absolute interpreter path to whether the guest has it.
    """
    problems = []
    for shebang in shebangs:
        program = shebang.interpreter
        name = posixpath.basename(program)
        inside = any(program.startswith(root.rstrip("/") + "/") for root in roots)
        if not program.startswith("/"):  # looked up on PATH through env
            if PYTHONISH.match(name):
                problems.append(f"{shebang.path}: '{shebang.line}' runs whatever {name} is on PATH; "
                                "the clean machine has none, so this script cannot start")
            elif name not in SYSTEM_SHELLS:
                problems.append(f"{shebang.path}: '{shebang.line}' needs {name} from PATH")
            continue
        if inside:
            if not exists.get(program, True):
                problems.append(f"{shebang.path}: '{shebang.line}' points inside the release at a "
                                "file that is not there")
            continue
        if PYTHONISH.match(name):
            problems.append(f"{shebang.path}: '{shebang.line}' uses a Python outside the release")
        elif not exists.get(program, True):
            problems.append(f"{shebang.path}: '{shebang.line}': {program} does not exist on a clean machine")
    return problems


def check_paths_exist(guest: Guest, paths: Sequence[str]) -> dict[str, bool]:
    unique = sorted({p for p in paths if p.startswith("/")})
    if not unique:
        return {}
    script = "; ".join(f"test -x {shlex.quote(p)} && echo 1 || echo 0" for p in unique)
    answers = guest.run(script, timeout=60).stdout.split()
    return {p: a == "1" for p, a in zip(unique, answers)}


def not_found_lines(text: str, source: str, limit: int = 5) -> list[str]:
    """Lines of ``text`` where a shell failed to find a Python."""
    hits = [f"{source}: {line.strip()}" for line in text.splitlines() if NOT_FOUND.search(line)]
    return hits[:limit]
