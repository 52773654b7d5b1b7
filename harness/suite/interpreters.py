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
from typing import Self

from harness.guest import Guest

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


class InterpreterProblem(str):
    """One problem line, remembering which interpreter it is about (for the check's headline)."""

    interpreter: str

    def __new__(cls, text: str, interpreter: str) -> Self:
        made = super().__new__(cls, text)
        made.interpreter = interpreter
        return made


def interpreter_headline(problems: Sequence[str]) -> str:
    """What the check's first line says, naming the interpreters it found."""
    names = sorted({p.interpreter for p in problems if isinstance(p, InterpreterProblem) and p.interpreter})
    pythons = [n for n in names if PYTHONISH.match(n)]
    shown = ", ".join(names) or "an interpreter"
    if names and len(pythons) == len(names):
        return f"the release relies on a Python outside itself ({shown})"
    return f"the release relies on interpreters a clean machine lacks ({shown})"


def runnable(shebangs: Sequence[Shebang]) -> tuple[list[Shebang], list[Shebang]]:
    """(scripts a release can run, inert ones inside Python library directories)."""
    library = [s for s in shebangs if LIBRARY_DIRS.search(s.path)]
    return [s for s in shebangs if s not in library], library


def foreign_interpreters(shebangs: Sequence[Shebang], roots: Sequence[str],
                         exists: dict[str, bool]) -> list[str]:
    """Problems: Python interpreters outside the release, and interpreters missing in the guest.

    ``exists`` maps each absolute interpreter path to whether the guest has it.
    """
    problems: list[str] = []
    for shebang in shebangs:
        text = _judge(shebang, roots, exists)
        if text:
            problems.append(InterpreterProblem(f"{shebang.path}: '{shebang.line}'{text}",
                                               posixpath.basename(shebang.interpreter)))
    return problems


def _judge(shebang: Shebang, roots: Sequence[str], exists: dict[str, bool]) -> str:
    program = shebang.interpreter
    name = posixpath.basename(program)
    if not program.startswith("/"):  # looked up on PATH through env
        if PYTHONISH.match(name):
            return f" runs whatever {name} is on PATH; the clean machine has none, so this script cannot start"
        return "" if name in SYSTEM_SHELLS else f" needs {name} from PATH"
    if any(program.startswith(root.rstrip("/") + "/") for root in roots):
        return "" if exists.get(program, True) else " points inside the release at a file that is not there"
    if PYTHONISH.match(name):
        return " uses a Python outside the release"
    return "" if exists.get(program, True) else f": {program} does not exist on a clean machine"


def check_paths_exist(guest: Guest, paths: Sequence[str]) -> dict[str, bool]:
    unique = sorted({p for p in paths if p.startswith("/")})
    if not unique:
        return {}
    script = "; ".join(f"test -x {shlex.quote(p)} && echo 1 || echo 0" for p in unique)
    answers = guest.run(script, timeout=60).stdout.split()
    return {p: a == "1" for p, a in zip(unique, answers)}


def not_found_lines(text: str, source: str, limit: int = 5) -> list[str]:
    """Lines of ``text`` where a shell failed to find a Python."""
    hits: list[str] = []
    for line in text.splitlines():
        match = NOT_FOUND.search(line)
        if match:
            name = posixpath.basename(match["name"] or match["env"] or "")
            hits.append(InterpreterProblem(f"{source}: {line.strip()}", name))
    return hits[:limit]
