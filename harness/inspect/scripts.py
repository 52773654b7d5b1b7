"""Scripts: a shebang must name an interpreter the target has or the release can provide.

Only executable files count (a ``#!`` line in a module that is never run directly is harmless).
Python is special: the release ships its own, so a script that reaches for the system's Python
either fails on a clean machine or silently runs outside the release's environment.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from harness.inspect.archive import Entry, ReleaseContents
from harness.inspect.findings import Finding
from harness.inspect.targets import Target

SHEBANG_LINE_MAX = 512


@dataclass(frozen=True)
class Shebang:
    path: str
    interpreter: str
    args: tuple[str, ...]

    @property
    def command(self) -> str:
        """The program actually run: env's first operand, else the interpreter."""
        if posixpath.basename(self.interpreter) != "env":
            return self.interpreter
        for arg in self.args:
            if arg.startswith("-") or "=" in arg:
                continue
            return arg
        return ""


LIBRARY_MARKERS = ("/site-packages/", "/dist-packages/")
SCRIPT_DIRS = ("bin", "sbin", "scripts", "libexec")


def is_run_directly(path: str) -> bool:
    """Whether a user or installer would execute this file rather than import it.

    Library code keeps stray shebangs (CPython's own stdlib has ``#! /usr/local/bin/python`` in
    several modules; wheels ship executable .py modules): those never run as programs.
    """
    wrapped = f"/{path}"
    if any(marker in wrapped for marker in LIBRARY_MARKERS) or "/lib/python" in wrapped:
        return False
    if path.endswith(".py"):
        return posixpath.basename(posixpath.dirname(path)) in SCRIPT_DIRS
    return True


def parse_shebang(path: str, data: bytes) -> Shebang | None:
    if not data.startswith(b"#!"):
        return None
    line = data[2:SHEBANG_LINE_MAX].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if not words:
        return Shebang(path, "", ())
    # `env -S "python3 -u"` packs several words into one operand
    args = tuple(w for word in words[1:] for w in word.split())
    return Shebang(path, words[0], args)


class ShebangCollector:
    """A content visitor that reads the first line of every executable file starting with #!."""

    def __init__(self) -> None:
        self.scripts: dict[str, Shebang] = {}

    def wants(self, entry: Entry, head: bytes) -> bool:
        return head.startswith(b"#!") and bool(entry.mode & 0o111) and is_run_directly(entry.path)

    def visit(self, entry: Entry, data: bytes) -> None:
        shebang = parse_shebang(entry.path, data[:SHEBANG_LINE_MAX])
        if shebang is not None:
            self.scripts[entry.path] = shebang


def _is_python(command: str) -> bool:
    return posixpath.basename(command).startswith("python")


def _points_into_release(interpreter: str, paths: set[str]) -> str:
    """The release path an absolute interpreter seems to mean (its last 3+ components match)."""
    parts = interpreter.strip("/").split("/")
    for cut in range(len(parts) - 3, -1, -1):
        if "/".join(parts[cut:]) in paths or any(p.endswith("/" + "/".join(parts[cut:])) for p in paths):
            return "/".join(parts[cut:])
    return ""


def check_script(script: Shebang, target: Target, paths: set[str]) -> Finding | None:
    interp, command = script.interpreter, script.command
    where = f"#!{interp}{' ' + ' '.join(script.args) if script.args else ''}"
    if not interp.startswith("/"):
        return Finding("scripts.missing_interpreter", "error", script.path,
                       f"{where}: a relative interpreter path depends on the working directory",
                       "use an absolute interpreter such as /bin/sh, or a relative launcher script")
    if posixpath.basename(interp) == "env":
        if not command:
            return Finding("scripts.missing_interpreter", "error", script.path, f"{where}: env without a command",
                           "name the interpreter after /usr/bin/env")
        stub = next((why for path, why in target.stub_interpreters.items() if posixpath.basename(path) == command), "")
        present = command in target.commands and not stub
    else:
        stub = target.stub_interpreters.get(interp, "")
        present = interp in target.interpreters and not stub
    if present and _is_python(command):
        return Finding("scripts.system_interpreter", "warning", script.path,
                       f"{where}: runs the system's Python, not the one the release ships",
                       "point the script at the release's own interpreter through a relative launcher")
    if present:
        return None
    inside = _points_into_release(interp, paths) if interp.startswith("/") and not stub else ""
    if inside:
        return Finding("scripts.hardcoded_install_path", "error", script.path,
                       f"{where}: hard-codes the install location of {inside}; breaks when installed elsewhere",
                       "use a relative launcher (as venvstacks' scripts do) or rewrite shebangs at install time")
    reason = f" ({stub})" if stub else ""
    return Finding("scripts.missing_interpreter", "error", script.path,
                   f"{where}: {command or interp} is not on a clean {target.name}{reason}",
                   "use an interpreter the target ships (/bin/sh) or one the release ships, via a relative launcher")


def check_scripts(scripts: dict[str, Shebang], contents: ReleaseContents, target: Target) -> list[Finding]:
    paths = {e.path for e in contents.entries if e.kind in ("file", "symlink", "hardlink")}
    findings = [check_script(scripts[p], target, paths) for p in sorted(scripts)]
    return [f for f in findings if f is not None]
