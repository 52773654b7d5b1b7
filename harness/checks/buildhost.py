"""No build machine inside the release: every interpreter's ``sys.path``, every ``.pth``,
``sitecustomize.py`` and ``pyvenv.cfg``, every configuration-like file and every script of the
release may name only paths of the deployment itself, never the build host's (a home under
/home, /root or /Users). Prose is not judged: libraries' docstrings and metadata are full of
example paths such as /home/user/data.txt.

Judged in the guest after the install, because post-install steps rewrite paths: what counts is
what the clean machine ends up with.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.guest import Guest

SCAN_TIMEOUT_S = 300.0
# A home directory of some user: the shape every build host leaks.
HOME_PATH = re.compile(r"(?<![\w./-])(?:/home/[A-Za-z0-9._-]+|/root|/Users/[A-Za-z0-9._-]+)(?:/[\w.@+-]+)*")
PATH_FILES = ("*.pth", "sitecustomize.py", "usercustomize.py", "pyvenv.cfg")
# An absolute path as a .pth line, a pyvenv.cfg value or a string literal in sitecustomize.py.
ABSOLUTE = re.compile(r"(?:^|[\s='\"])(/[\w.@+-]+(?:/[\w.@+-]+)*)")
GREP_HOME = r"(/home/[A-Za-z0-9._-]+|/root|/Users/[A-Za-z0-9._-]+)/[A-Za-z0-9._@+/-]*"
SYS_PATH = "import json, sys; print(json.dumps(sys.path))"


@dataclass(frozen=True)
class Interpreter:
    layer: str
    python: str


def inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == r.rstrip("/") or path.startswith(r.rstrip("/") + "/") for r in roots)


def interpreters(guest: Guest, layers_dir: str) -> list[Interpreter]:
    """Each layer's own python (``<layer>/bin/python``, or python3 in the runtime layer)."""
    listing = guest.run(f"for d in {shlex.quote(layers_dir)}/*/; do for p in \"$d\"bin/python \"$d\"bin/python3; do "
                        "[ -x \"$p\" ] && { echo \"$p\"; break; }; done; done; true", timeout=60).stdout
    return [Interpreter(line.split("/")[-3], line) for line in listing.splitlines() if line.startswith("/")]


def sys_paths(guest: Guest, found: Sequence[Interpreter], cwd: str,
              env: Mapping[str, str] | None = None) -> dict[str, list[str] | str]:
    """sys.path per layer (as the server's working directory and environment see it), or the error."""
    out: dict[str, list[str] | str] = {}
    for interp in found:
        result = guest.run(f"{shlex.quote(interp.python)} -c {shlex.quote(SYS_PATH)}", timeout=120, cwd=cwd, env=env)
        try:
            out[interp.layer] = [str(p) for p in json.loads(result.stdout.strip().splitlines()[-1])]
        except (ValueError, IndexError):
            out[interp.layer] = f"exit {result.exit_code}: {result.stderr.strip()[-300:]}"
    return out


def sys_path_problems(paths: Mapping[str, list[str] | str], roots: Sequence[str]) -> list[str]:
    problems = []
    for layer, entries in paths.items():
        if isinstance(entries, str):
            problems.append(f"{layer}: its python did not report sys.path ({entries})")
            continue
        problems += [f"{layer}: sys.path holds {p}, outside the deployment ({', '.join(roots)})"
                     for p in entries if p and not inside(p, roots)]
    return problems


def path_files_command(roots: Sequence[str]) -> str:
    names = " -o ".join(f"-name {shlex.quote(n)}" for n in PATH_FILES)
    quoted = " ".join(shlex.quote(r) for r in roots)
    return (f"find {quoted} -type f \\( {names} \\) 2>/dev/null | while IFS= read -r f; do "
            "printf '==hns== %s\\n' \"$f\"; cat \"$f\"; echo; done; true")


def parse_path_files(output: str) -> dict[str, str]:
    files: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith("==hns== "):
            current = files.setdefault(line[8:], [])
        else:
            current.append(line)
    return {path: "\n".join(lines) for path, lines in files.items()}


def named_paths(name: str, text: str) -> list[str]:
    """The absolute paths a path-configuration file names (``import`` lines of a .pth are code)."""
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or (name.endswith(".pth") and stripped.startswith("import")):
            continue
        found += ABSOLUTE.findall(stripped)
    return found


def check_exist(guest: Guest, paths: Iterable[str]) -> dict[str, bool]:
    unique = sorted(set(paths))
    if not unique:
        return {}
    script = "; ".join(f"test -e {shlex.quote(p)} && echo 1 || echo 0" for p in unique)
    return dict(zip(unique, (a == "1" for a in guest.run(script, timeout=120).stdout.split())))


def path_file_problems(files: Mapping[str, str], exists: Mapping[str, bool]) -> list[str]:
    problems = []
    for path, text in sorted(files.items()):
        name = path.rsplit("/", 1)[-1]
        for named in named_paths(name, text):
            if not exists.get(named, True):
                problems.append(f"{path} names {named}, which does not exist on the clean machine")
    return problems


# Files programs read paths from (configuration, build records), as opposed to prose: a docstring
# of a library saying "/home/user/data.txt" is an example, a pyvenv.cfg saying it is a leak.
PATH_BEARING = ("*.pth", "*.cfg", "*.ini", "*.conf", "*.env", "*.toml", "*.egg-link", "direct_url.json",
                "RECORD", "_sysconfigdata*.py", "Makefile", "*.pc", "*.la", "*.cmake", "*-config", "*-config.py")
# Python library directories: their executables are modules, not programs anyone runs.
LIBRARY_PATHS = ("*/site-packages/*", "*/dist-packages/*", "*/lib/python3*")


def home_mentions_command(roots: Sequence[str]) -> str:
    """``file:match`` lines: home paths in path-bearing files, and in the release's own scripts."""
    quoted = " ".join(shlex.quote(r) for r in roots)
    pattern = shlex.quote(GREP_HOME)
    includes = " ".join(f"--include={shlex.quote(n)}" for n in PATH_BEARING)
    outside_libraries = " ".join(f"! -path {shlex.quote(p)}" for p in LIBRARY_PATHS)
    return (f"grep -rIoE {includes} {pattern} {quoted} 2>/dev/null; "
            f"find {quoted} -type f -perm -u+x {outside_libraries} -exec grep -HIoE {pattern} {{}} + 2>/dev/null; true")


def home_problems(output: str, roots: Sequence[str], allowed: Sequence[str] = (),
                  limit_per_file: int = 3) -> list[str]:
    """Installed files naming a home directory's path outside the deployment, one line per file;
    files matching ``allowed`` (the profile's ``install.build_residue``) are not judged."""
    by_file: dict[str, list[str]] = {}
    for line in output.splitlines():
        path, sep, match = line.partition(":")
        if not sep or any(fnmatch.fnmatchcase(path, a) for a in allowed):
            continue
        for named in HOME_PATH.findall(match):
            if not inside(named, roots) and named not in by_file.setdefault(path, []):
                by_file[path].append(named)
    return [f"{path} names {', '.join(found[:limit_per_file])}"
            + (f" (and {len(found) - limit_per_file} more)" if len(found) > limit_per_file else "")
            + ", a home directory outside the deployment (the build host's?)"
            for path, found in sorted(by_file.items()) if found]
