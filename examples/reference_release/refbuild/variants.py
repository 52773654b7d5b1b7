"""The broken variants: each an edit of the good ReleaseTree carrying one defect (see variants.toml)."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .assemble import APP_LAYER, STACK_DIR
from .config import BuildPaths
from .errors import BuildError
from .native import NATIVE_FILENAME, ensure_native_extension, ensure_stale_app_archive
from .stack import PublishedStack
from .tree import Member, ReleaseTree

UPDATES_URL = "http://updates.refapp.invalid/refapp/v$release_version/models.json"
POSTINSTALL_ANCHOR = "# ---- move into place, then post-install (it writes absolute paths) ----------\n"
SMOKE_CHECK_ANCHOR = 'app_python="$stack/$app_layer/bin/python"\n'
WARMUP_SCRIPT = '''#!/usr/bin/env python3
"""Pre-compiles the server sources once they are installed."""
import compileall
import sys

sys.exit(0 if compileall.compile_dir(sys.argv[1], quiet=1) else 1)
'''


@dataclass(frozen=True)
class VariantSpec:
    name: str
    defect: str
    precedent: str
    caught_by: tuple[str, ...]
    stage: str
    on_host: bool
    changes: tuple[str, ...]


@dataclass(frozen=True)
class VariantInputs:
    paths: BuildPaths
    stack: PublishedStack


def installer_download(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    fetch = (
        f'say "fetching the model manifest from {UPDATES_URL}"\n'
        '"$runtime_python" -I -S -c \'import sys, urllib.request\n'
        'urllib.request.urlopen(sys.argv[1], timeout=10).read()\' '
        f'"{UPDATES_URL}" 2>"$staging/fetch.err" || \\\n'
        '    fail "could not fetch the model manifest: $(tail -n 1 "$staging/fetch.err")" "check the internet connection"\n\n'
    )
    return tree.edit_installer(POSTINSTALL_ANCHOR, fetch + POSTINSTALL_ANCHOR)


def foreign_library(tree: ReleaseTree, inputs: VariantInputs) -> ReleaseTree:
    extension = ensure_native_extension(inputs.paths)
    tree = tree.with_member(f"server/{NATIVE_FILENAME}", Member(extension.read_bytes(), 0o755))
    return tree.edit_text("server/main.py", "    from .tokenizer import CharTokenizer\n",
                          "    from .tokenizer import CharTokenizer\n    from . import _native  # noqa: F401\n")


def ignores_temperature(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    tree = tree.edit_text("server/api.py", "        temperature = request.temperature\n",
                          "        temperature = request.temperature or 1.0\n")
    return tree.edit_text("server/api.py", "seed=request.seed)", "seed=None)")


def duplicate_app_layer(tree: ReleaseTree, inputs: VariantInputs) -> ReleaseTree:
    current = inputs.stack.archive_for(APP_LAYER)
    stale = ensure_stale_app_archive(inputs.paths, current, old_version="0.0.9")
    stale_name = current.name.rsplit("-", 1)[0] + "-0.tar.xz"
    return tree.with_member(f"{STACK_DIR}/{stale_name}", Member(stale.read_bytes()))


def system_python_shebang(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    tree = tree.with_member("server/tools/warmup.py", Member(WARMUP_SCRIPT.encode(), 0o755))
    warmup = '"$lib_dir/server/tools/warmup.py" "$lib_dir/server" >/dev/null || fail "warm-up of the server sources failed"\n'
    return tree.edit_installer(SMOKE_CHECK_ANCHOR, warmup + SMOKE_CHECK_ANCHOR)


def unsafe_member(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return replace(tree, raw_members={"../.refapp-escape": Member(b"written outside the unpack directory\n")})


def stray_writes(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return tree.edit_text(
        "server/main.py", "    uvicorn.run(",
        '    with open(os.path.expanduser("~/.refapp_history"), "a", encoding="utf-8") as history:\n'
        '        history.write(f"started {time.time()}\\n")\n'
        "    uvicorn.run(",
    )


def stream_mismatch(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return tree.edit_text("server/api.py", 'yield sse(chunk({"content": piece}))',
                          'yield sse(chunk({"content": piece.strip()}))')


def stale_checksum(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return replace(tree, checksum_override=hashlib.sha256(b"refapp 0.0.9 tarball").hexdigest())


EDITS: dict[str, Callable[[ReleaseTree, VariantInputs], ReleaseTree]] = {
    edit.__name__: edit
    for edit in (installer_download, foreign_library, ignores_temperature, duplicate_app_layer,
                 system_python_shebang, unsafe_member, stray_writes, stream_mismatch, stale_checksum)
}


def load_variant_table(path: Path) -> list[VariantSpec]:
    with path.open("rb") as handle:
        rows = tomllib.load(handle).get("variant", [])
    specs = [VariantSpec(r["name"], r["defect"], r["precedent"], tuple(r["caught_by"]), r["stage"],
                         bool(r["on_host"]), tuple(r["changes"])) for r in rows]
    names = [s.name for s in specs]
    if sorted(names) != sorted(EDITS):
        raise BuildError(f"{path} lists {sorted(names)} but refbuild/variants.py defines {sorted(EDITS)}",
                         "keep the table and the edits in step")
    return specs


def apply_variant(name: str, tree: ReleaseTree, inputs: VariantInputs) -> ReleaseTree:
    if name not in EDITS:
        raise BuildError(f"unknown variant {name!r}", f"choose one of: {', '.join(sorted(EDITS))}")
    return EDITS[name](tree, inputs)
