#!/usr/bin/env python3
"""Build the Tiles-shaped fixture release: `python examples/tiles_release/build.py [--out DIR]`.

A STAND-IN for a Tiles release, for the harness's own tests: the reference release's layers and
model (examples/reference_release, built first if missing) laid out as Tiles' bundler lays out a
Linux x86_64 release (tiles-contract.md, "Release tarball"): `./`-prefixed members, `./tiles`
(a stand-in CLI), `./pi/`, `./vendor/`, `./plugins/`, `./modelfiles/`, the menubar files
(`./tiles-menubar`, `./ui/`, `./tiles.png`), `./server/` with `bin/llama-server` and
`stack_export_prod/`. The runtime layer is renamed cpython3.11 -> cpython3.13 (its interpreter
stays 3.11) so the layer names are Tiles', and its build configuration names
python-build-standalone's /install prefix, not the seed's build host. Written beside each
tarball: this fixture's own install.sh (installer/install.sh) and checksums.txt.

Outputs under <out> (default examples/tiles_release/dist):
  current/tiles-v0.4.20-canary.1-x86_64-linux.tar.gz   the current server API (OpenAI SSE + JSON)
  sse-era/tiles-v0.4.3-x86_64-linux.tar.gz             the 0.4.x-era API (tiles-sse)
  variants/<name>/...                                   broken forms (see VARIANTS)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parent / "reference_release"
OLD_RUNTIME, NEW_RUNTIME = b"cpython3.11", b"cpython3.13"
# Tiles' runtime is python-build-standalone, configured with prefix /install: its build
# configuration names that, never a home directory. The reference seed is a local CPython whose
# configuration names the build host's home, so the fixture rewrites it to what Tiles ships.
STANDALONE_PREFIX = b"/install"
SYSCONFIG_DATA = re.compile(r"/_sysconfigdata_[^/]*\.py$")
BUILD_CONFIG = re.compile(r"(/_sysconfigdata_[^/]*\.py|/config-3\.[^/]+/(Makefile|python-config\.py)|/bin/python3[.0-9]*-config)$")
GENERATIONS = {"current": "0.4.20-canary.1", "sse-era": "0.4.3"}
# Broken forms: name -> (what is wrong, the generation it is built from).
VARIANTS = {
    "wrapper_postinstall": ("post-install runs app-server/bin/python app-server/postinstall.py (Tiles' order): "
                            "the venvstacks wrapper cannot find the stdlib before pyvenv.cfg exists", "current"),
    "missing_vendor": ("the bundler left vendor/ out; the installer requires it", "current"),
}
GOOD_POSTINSTALL = '    "$runtime/bin/python" "$layer/postinstall.py"\n'
TILES_POSTINSTALL = ('    case "$layer" in app-*) "$layer/bin/python" "$layer/postinstall.py" ;;'
                     ' *) "$runtime/bin/python" "$layer/postinstall.py" ;; esac\n')
# A PNG header is all a desktop icon check needs; this fixture never draws it.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6300010000050001d5e2f4a10000000049454e44ae426082")


@dataclass(frozen=True)
class Member:
    data: bytes
    mode: int = 0o644
    link: str = ""  # symlink target


def reference_tarball() -> Path:
    found = sorted((REFERENCE / "dist").glob("refapp-v*-x86_64-linux.tar.gz"))
    if not found:
        subprocess.run([sys.executable, str(REFERENCE / "build.py")], check=True, stdout=subprocess.DEVNULL)
        found = sorted((REFERENCE / "dist").glob("refapp-v*-x86_64-linux.tar.gz"))
    if not found:
        sys.exit("build.py: the reference release build left no tarball in examples/reference_release/dist")
    return found[0]


def read_tar(data: bytes, mode: str) -> dict[str, Member]:
    out: dict[str, Member] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as archive:
        for info in archive:
            if info.isfile():
                out[info.name] = Member(archive.extractfile(info).read(), info.mode)  # type: ignore[union-attr]
            elif info.issym():
                out[info.name] = Member(b"", info.mode, info.linkname)
    return out


def configure_prefix(members: dict[str, Member]) -> bytes | None:
    """The prefix the runtime's CPython was configured with, as its sysconfig data records it."""
    for name, m in members.items():
        if SYSCONFIG_DATA.search(name):
            found = re.search(rb"'prefix': '([^']+)'", m.data)
            if found:
                return found.group(1)
    return None


def rename_runtime(data: bytes) -> bytes:
    """A layer archive with the runtime's directory renamed wherever paths name it, and its build
    configuration naming python-build-standalone's prefix instead of the seed's build host."""
    members = read_tar(data, "r:xz")
    prefix = configure_prefix(members)

    def rewritten(name: str, m: Member) -> bytes:
        body = m.data
        if prefix is not None and BUILD_CONFIG.search(name):
            body = body.replace(prefix, STANDALONE_PREFIX)
        if len(body) < 65536 and not name.endswith(".pyc"):
            body = body.replace(OLD_RUNTIME, NEW_RUNTIME)
        return body

    renamed = {name.replace("cpython3.11", "cpython3.13"): Member(
        rewritten(name, m), m.mode, m.link.replace("cpython3.11", "cpython3.13")) for name, m in members.items()}
    return write_tar(renamed, "w:xz", prefix="", owner=0)


def write_tar(members: dict[str, Member], mode: str, prefix: str, owner: int) -> bytes:
    raw = io.BytesIO()
    kwargs = {"preset": 1} if mode == "w:xz" else {}
    dirs = sorted({str(Path(n).parents[i]) for n in members for i in range(len(Path(n).parents) - 1)})
    with tarfile.open(fileobj=raw, mode=mode, format=tarfile.PAX_FORMAT, **kwargs) as archive:  # type: ignore[call-overload]
        if prefix:
            archive.addfile(_info(prefix.rstrip("/"), tarfile.DIRTYPE, 0o755, owner))
        for name in dirs:
            archive.addfile(_info(prefix + name, tarfile.DIRTYPE, 0o755, owner))
        for name in sorted(members):
            m = members[name]
            if m.link:
                info = _info(prefix + name, tarfile.SYMTYPE, 0o777, owner)
                info.linkname = m.link
                archive.addfile(info)
            else:
                info = _info(prefix + name, tarfile.REGTYPE, m.mode, owner)
                info.size = len(m.data)
                archive.addfile(info, io.BytesIO(m.data))
    return raw.getvalue()


def _info(name: str, kind: bytes, mode: int, owner: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, owner, owner, 1764547200
    return info


def renamed_stack(reference: dict[str, Member]) -> dict[str, Member]:
    """server/stack_export_prod with the runtime renamed; the venvstacks metadata is rewritten to
    the repacked archives' sha256 and size, as a publish of those archives would have written it."""
    stack = {name.replace("cpython3.11", "cpython3.13"): (name, m) for name, m in reference.items()
             if name.startswith("server/stack_export_prod/")}
    archives: dict[str, Member] = {}
    swaps: list[tuple[bytes, bytes]] = [(OLD_RUNTIME, NEW_RUNTIME)]
    for name, (old_name, m) in stack.items():
        if name.endswith(".tar.xz"):
            data = rename_runtime(m.data)
            archives[name] = Member(data, m.mode)
            swaps.append((hashlib.sha256(m.data).hexdigest().encode(), hashlib.sha256(data).hexdigest().encode()))
            swaps.append((f'"archive_size": {len(m.data)}'.encode(), f'"archive_size": {len(data)}'.encode()))
    out = dict(archives)
    for name, (_, m) in stack.items():
        if name not in archives:
            data = m.data
            for old, new in swaps:
                data = data.replace(old, new)
            out[name] = Member(data, m.mode)
    return out


def layout(reference: dict[str, Member], stack: dict[str, Member], generation: str) -> dict[str, Member]:
    members: dict[str, Member] = dict(stack)
    for name, m in reference.items():
        if name.startswith(("server/", "modelfiles/")) and not name.startswith("server/stack_export_prod/") \
                and name != "server/main.py":
            members[name] = m
    for source in ("main.py", "tiles_api.py"):
        members[f"server/{source}"] = Member((HERE / "server" / source).read_bytes())
    members["server/generation_choice.py"] = Member(
        f'"""Which Tiles API generation this stand-in server speaks (set by build.py)."""\n\n'
        f'API_GENERATION = "{generation}"\n'.encode())
    members["server/bin/llama-server"] = Member(
        b"#!/bin/sh\n# STAND-IN for llama.cpp's llama-server: the fixture's model runs in Python.\n"
        b"echo 'llama-server (stand-in): not used by the fixture' >&2\nexit 1\n", 0o755)
    members["tiles"] = Member((HERE / "cli" / "tiles").read_bytes(), 0o755)
    members["pi/README.md"] = Member(b"STAND-IN for the bundled pi agent.\n")
    members["vendor/node_modules/README.md"] = Member(b"STAND-IN for the vendored node modules.\n")
    members["plugins/README.md"] = Member(b"STAND-IN for optional plugins.\n")
    members["modelfiles/qwen2.5-0.5b-instruct-gguf"] = Member(b"FROM Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M\n")
    members["tiles-menubar"] = Member(b"#!/bin/sh\n# STAND-IN for the Linux menubar app.\nexit 0\n", 0o755)
    members["ui/index.html"] = Member(b"<!doctype html><title>Tiles (stand-in)</title>\n")
    members["tiles.png"] = Member(PNG)
    return members


def publish(directory: Path, version: str, members: dict[str, Member], installer: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / f"tiles-v{version}-x86_64-linux.tar.gz"
    raw = write_tar(members, "w", prefix="./", owner=1000)  # keeps a build machine's owner, as Tiles' does
    with tarball.open("wb") as handle, gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as gz:
        gz.write(raw)
    (directory / "install.sh").write_text(installer)
    (directory / "install.sh").chmod(0o755)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    (directory / "checksums.txt").write_text(f"{digest}  {tarball.name}\n")
    return tarball


OUTPUTS = [f"{g}/tiles-v{v}-x86_64-linux.tar.gz" for g, v in GENERATIONS.items()] + [
    f"variants/{name}/tiles-v{GENERATIONS[gen]}-x86_64-linux.tar.gz" for name, (_, gen) in VARIANTS.items()]


def inputs_digest(reference: Path) -> str:
    """What the outputs are made of: this builder, its stand-ins and the reference tarball."""
    digest = hashlib.sha256(hashlib.sha256(reference.read_bytes()).digest())
    for path in sorted(p for p in HERE.rglob("*") if p.is_file() and "dist" not in p.relative_to(HERE).parts
                       and "__pycache__" not in p.parts and "goldens" not in p.relative_to(HERE).parts):
        digest.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "dist")
    args = parser.parse_args(argv)
    started = time.monotonic()
    source = reference_tarball()
    stamp = args.out / ".inputs"
    inputs = inputs_digest(source)
    if stamp.is_file() and stamp.read_text() == inputs and all((args.out / t).is_file() for t in OUTPUTS):
        print(f"build.py: {args.out} is current (inputs unchanged)", file=sys.stderr)
        return 0
    reference = read_tar(source.read_bytes(), "r:gz")
    installer = (HERE / "installer" / "install.sh").read_text()
    if GOOD_POSTINSTALL not in installer:
        sys.exit("build.py: installer/install.sh no longer has the post-install line the variants edit")
    stack = renamed_stack(reference)
    built = [publish(args.out / generation, version, layout(reference, stack, generation), installer)
             for generation, version in GENERATIONS.items()]
    good = layout(reference, stack, "current")
    broken = {
        "wrapper_postinstall": (good, installer.replace(GOOD_POSTINSTALL, TILES_POSTINSTALL)),
        "missing_vendor": ({k: v for k, v in good.items() if not k.startswith("vendor/")}, installer),
    }
    for name, (members, script) in broken.items():
        built.append(publish(args.out / "variants" / name, GENERATIONS[VARIANTS[name][1]], members, script))
    stamp.write_text(inputs)
    for path in built:
        print(path)
    print(f"build.py: {len(built)} tarballs in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
