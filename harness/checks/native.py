"""Everything native loads on the clean machine: every ELF file of the installed tree is resolved
by the guest's own dynamic loader (not only what the server imports at start-up), and the
shipped runtime's standard-library extensions import.

glibc's loader in trace mode (``LD_TRACE_LOADED_OBJECTS=1 ld.so FILE``, what ``ldd`` runs) resolves
a file's NEEDED entries with its RPATH/RUNPATH and ``$ORIGIN`` rules exactly as at run time,
without running the file, and names each library it cannot find; it is on every glibc system.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SCAN_TIMEOUT_S = 600.0
LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux-x86-64.so.2")
MARK = "==hns== "

# The stdlib extensions python-build-standalone validates on its targets, each with a use that
# touches the native library behind it (an import alone can succeed lazily).
STDLIB_PROBES: Mapping[str, str] = {
    "ssl": "import ssl; ssl.create_default_context(); ssl.OPENSSL_VERSION",
    "sqlite3": "import sqlite3; sqlite3.connect(':memory:').execute('select 1').fetchall()",
    "ctypes": "import ctypes; ctypes.CDLL(None)",
    "lzma": "import lzma; lzma.decompress(lzma.compress(b'x'))",
    "bz2": "import bz2; bz2.decompress(bz2.compress(b'x'))",
    "zlib": "import zlib; zlib.decompress(zlib.compress(b'x'))",
    "uuid": "import uuid; uuid.uuid4()",
    "hashlib": "import hashlib; [hashlib.new(n, b'x').digest() for n in "
               "('md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512', 'sha3_256', 'blake2b', 'blake2s')]",
    "decimal": "import decimal; decimal.Decimal('1.1') * 3",
    "socket": "import socket, select; socket.socket().close()",
}


@dataclass(frozen=True)
class Unresolved:
    file: str
    library: str

    def describe(self) -> str:
        return f"{self.file} needs {self.library}, which the clean machine's loader cannot find"


def loader_command(roots: Sequence[str]) -> str:
    """List every ELF file's resolution with the first loader the guest has."""
    quoted = " ".join(shlex.quote(r) for r in roots)
    candidates = " ".join(LOADERS)
    return (
        f"ldso=''; for l in {candidates}; do [ -x \"$l\" ] && {{ ldso=$l; break; }}; done; "
        f"[ -n \"$ldso\" ] || {{ echo '{MARK}no-loader'; exit 0; }}; "
        f"find {quoted} -type f \\( -name '*.so' -o -name '*.so.*' -o -perm -u+x \\) 2>/dev/null | "
        "while IFS= read -r f; do "
        "[ \"$(head -c 4 \"$f\" 2>/dev/null | od -An -c | tr -d ' ')\" = '177ELF' ] || continue; "
        f"printf '{MARK}%s\\n' \"$f\"; LD_TRACE_LOADED_OBJECTS=1 \"$ldso\" \"$f\" 2>&1; done; true"
    )


def parse_loader_output(output: str) -> tuple[list[str], list[Unresolved], bool]:
    """(ELF files listed, unresolved libraries, whether the guest had a loader at all)."""
    files: list[str] = []
    missing: list[Unresolved] = []
    current = ""
    for line in output.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):]
            if current == "no-loader":
                return files, missing, False
            files.append(current)
        elif "=> not found" in line and current:
            missing.append(Unresolved(current, line.split("=>", 1)[0].strip()))
    return files, missing, True


def stdlib_command(python: str) -> str:
    probes = json.dumps(dict(STDLIB_PROBES))
    code = ("import json, sys\nout = {}\nfor name, code in json.loads(sys.argv[1]).items():\n"
            "    try:\n        exec(code, {})\n        out[name] = ''\n"
            "    except BaseException as exc:\n        out[name] = f'{type(exc).__name__}: {exc}'\n"
            "print(json.dumps(out))")
    return f"{shlex.quote(python)} -I -c {shlex.quote(code)} {shlex.quote(probes)}"


def stdlib_problems(python: str, output: str, exit_code: int | None) -> list[str]:
    try:
        results = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [f"{python} could not run the standard-library probe (exit {exit_code}): {output.strip()[-300:]}"]
    return [f"{python}: {name} does not work: {error}" for name, error in results.items() if error]
