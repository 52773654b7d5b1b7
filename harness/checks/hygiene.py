"""The installed tree's hygiene: permissions nobody should ship, and what the installer left in
the scratch places (temp dirs, the user's cache) once it was done.

A world-writable file in a user's install lets any local account rewrite code the user runs; a
setuid bit or a device node has no business in an unpacked tarball; a file owned by another user
means the archive's owners leaked through; a forgotten unpack directory fills /tmp with every
upgrade.
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.guest import Guest, as_root_if_possible

SCAN_TIMEOUT_S = 300.0

# find(1) predicates, the same on GNU and BSD find; symlinks are always 0777 and are left out.
FINDINGS: tuple[tuple[str, str], ...] = (
    ("world-writable", "! -type l -perm -0002"),
    ("setuid", "-type f -perm -4000"),
    ("setgid", "-type f -perm -2000"),
    ("device file", "\\( -type b -o -type c \\)"),
)


@dataclass(frozen=True)
class TreeFinding:
    kind: str
    path: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.path}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


def scan_command(roots: Sequence[str], user: str) -> str:
    quoted = " ".join(shlex.quote(r) for r in roots)
    parts = [f"find {quoted} {test} -exec printf '{kind}\\t%s\\n' {{}} + 2>/dev/null" for kind, test in FINDINGS]
    # Owner names come from ls: BSD find has no -printf.
    parts.append(f"find {quoted} ! -user {shlex.quote(user)} -exec ls -ld {{}} + 2>/dev/null "
                 "| sed 's/^/owner\\t/'")
    return "; ".join(parts) + "; true"


def parse_scan(output: str) -> list[TreeFinding]:
    found = []
    for line in output.splitlines():
        kind, _, rest = line.partition("\t")
        if not rest:
            continue
        if kind == "owner":
            fields = rest.split(None, 8)
            if len(fields) == 9:
                found.append(TreeFinding("owned by another user", fields[8], f"owner {fields[2]}, group {fields[3]}"))
        else:
            found.append(TreeFinding(kind, rest))
    return found


def scan_tree(guest: Guest, roots: Sequence[str], user: str) -> list[TreeFinding]:
    result = guest.run(as_root_if_possible(scan_command(roots, user)), timeout=SCAN_TIMEOUT_S)
    return parse_scan(result.stdout)


def unexpected_leftovers(left: Iterable[str], allowed: Sequence[str]) -> list[str]:
    """Scratch entries the installer left that the profile's ``install.temp_leaves`` does not allow.
    Entries inside an already reported directory are folded into it."""
    kept = sorted(p for p in left if not any(fnmatch.fnmatchcase(p, a) for a in allowed))
    return [p for p in kept if not any(p.startswith(q.rstrip("/") + "/") for q in kept if q != p)]
