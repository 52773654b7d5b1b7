"""The broken variants: each an edit of the good ReleaseTree carrying one defect (see variants.toml)."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .assemble import APP_LAYER, RUNTIME_LAYER, STACK_DIR
from .config import BuildPaths
from .errors import BuildError
from .layers import ensure_edited_layer
from .native import NATIVE_FILENAME, ensure_native_extension, ensure_stale_app_archive
from .seed import PY_XY
from .stack import PublishedStack
from .tree import Member, ReleaseTree

UPDATES_URL = "http://updates.refapp.invalid/refapp/v$release_version/models.json"
POSTINSTALL_ANCHOR = "# ---- move into place, then post-install (it writes absolute paths) ----------\n"
SMOKE_CHECK_ANCHOR = 'app_python="$stack/$app_layer/bin/python"\n'
MOVE_ASIDE = (
    'if [ -e "$lib_dir" ]; then\n'
    '    backup="$staging/previous"\n'
    '    mv "$lib_dir" "$backup"\n'
    '    say "moved the previous install aside (restored if this install fails)"\n'
    'fi\n'
)
# Where the release was built from on the developer's machine: a home the clean machine lacks.
BUILD_CHECKOUT = "/root/src/refapp"
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


def reinstall_nests(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return tree.edit_installer(MOVE_ASIDE, "")


def upgrade_overlays(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return tree.edit_installer(MOVE_ASIDE + 'mv "$staging/lib" "$lib_dir"\n',
                               'mkdir -p "$lib_dir"\ncp -R "$staging/lib/." "$lib_dir/"\n')


def listens_everywhere(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return tree.edit_text("server/main.py", 'DEFAULT_HOST = "127.0.0.1"', 'DEFAULT_HOST = "0.0.0.0"')


def world_writable(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return tree.edit_installer(SMOKE_CHECK_ANCHOR, 'chmod -R a+w "$lib_dir/modelfiles"\n' + SMOKE_CHECK_ANCHOR)


def leaves_temp(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    keep = ('scratch=$(mktemp -d "${TMPDIR:-/tmp}/refapp-unpack.XXXXXX")\n'
            'cp "$staging/lib/release.env" "$scratch/"\n')
    return tree.edit_installer(POSTINSTALL_ANCHOR, keep + POSTINSTALL_ANCHOR)


def build_path_leak(tree: ReleaseTree, inputs: VariantInputs) -> ReleaseTree:
    current = inputs.stack.archive_for(APP_LAYER)
    edited = ensure_edited_layer(inputs.paths, current, "build_path_leak",
                                 add={f"lib/python{PY_XY}/site-packages/__editable__.refapp_dev.pth":
                                      f"{BUILD_CHECKOUT}/server\n".encode()})
    return tree.with_member(f"{STACK_DIR}/{current.name}", Member(edited.read_bytes()))


def unloaded_library(tree: ReleaseTree, inputs: VariantInputs) -> ReleaseTree:
    extension = ensure_native_extension(inputs.paths)
    return tree.with_member(f"server/{NATIVE_FILENAME}", Member(extension.read_bytes(), 0o755))


def runtime_without_lzma(tree: ReleaseTree, inputs: VariantInputs) -> ReleaseTree:
    current = inputs.stack.archive_for(RUNTIME_LAYER)
    edited = ensure_edited_layer(inputs.paths, current, "runtime_without_lzma",
                                 drop=[f"lib-dynload/_lzma.cpython-{PY_XY.replace('.', '')}-x86_64-linux-gnu.so"])
    return tree.with_member(f"{STACK_DIR}/{current.name}", Member(edited.read_bytes()))


def shared_rng(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    tree = tree.edit_text("server/sampling.py", "def make_rng(", "SHARED_RNG = random.Random()\n\n\ndef make_rng(")
    return tree.edit_text("server/sampling.py", "    return random.Random(seed)\n",
                          "    SHARED_RNG.seed(seed)\n    return SHARED_RNG\n")


def unquoted_paths(tree: ReleaseTree, _: VariantInputs) -> ReleaseTree:
    return tree.edit_installer('mv "$staging/unpacked/$part" "$staging/lib/$part"',
                               "mv $staging/unpacked/$part $staging/lib/$part")


EDITS: dict[str, Callable[[ReleaseTree, VariantInputs], ReleaseTree]] = {
    edit.__name__: edit
    for edit in (installer_download, foreign_library, ignores_temperature, duplicate_app_layer,
                 system_python_shebang, unsafe_member, stray_writes, stream_mismatch, stale_checksum,
                 reinstall_nests, upgrade_overlays, listens_everywhere, world_writable, leaves_temp,
                 build_path_leak, unloaded_library, runtime_without_lzma, shared_rng, unquoted_paths)
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
