"""Generate a Linux target's base-system list from the image itself.

    python -m harness.inspect.target_gen --image IMAGE.qcow2 --name debian-12 [-o FILE]
    python -m harness.inspect.target_gen --rootfs DIR --name debian-12 [-o FILE]

``--image`` reads the ext4 root file system of a built VM image without mounting or booting
it (``qemu-img convert`` to raw, then ``debugfs rdump`` of the library and program
directories), so the list is what a clean guest really has. The scan mirrors ``ldconfig``:
shared objects directly in the loader's directories, keyed by SONAME, with the symbol
versions each defines; plus the programs a shebang or ``env`` could name.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

from harness.errors import HarnessError, MissingToolError, UsageError
from harness.inspect.elf import ELF_MAGIC, parse_elf
from harness.inspect.targets import TARGETS_DIR, version_tuple

DEFAULT_LIBRARY_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")
PROGRAM_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin")
PATH_DIRS = ("/usr/local/bin", "/usr/bin", "/bin")
IMAGE_DIRS = ("/etc/ld.so.conf", "/etc/ld.so.conf.d", "/usr/lib", "/usr/lib64", "/usr/bin", "/usr/sbin",
              "/lib", "/lib64", "/bin", "/sbin")
COMMAND_TIMEOUT_S = 600


class TargetData(TypedDict):
    """A generated target file's contents (what :mod:`harness.inspect.targets` loads)."""

    name: str
    os: str
    arch: str
    source: str
    glibc: str
    library_dirs: list[str]
    sonames: list[str]
    symbol_versions: dict[str, list[str]]
    interpreters: list[str]
    commands: list[str]


def inside(root: Path, path: str, depth: int = 0) -> Path:
    """``path`` of the guest resolved under ``root``, following the guest's own symlinks."""
    current = root
    for part in [p for p in path.split("/") if p]:
        candidate = current / part
        if candidate.is_symlink() and depth < 40:
            link = os.readlink(candidate)
            base = "/" if link.startswith("/") else "/" + str(current.relative_to(root))
            candidate = inside(root, os.path.normpath(os.path.join(base, link)), depth + 1)
        current = candidate
    return current


def library_dirs(root: Path) -> list[str]:
    dirs: list[str] = []

    def read_conf(conf: Path) -> None:
        if not conf.is_file():
            return
        for line in conf.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                pattern = line.split(None, 1)[1].lstrip("/")
                for included in sorted(inside(root, "/").glob(pattern)):
                    read_conf(included)
            elif line.startswith("/"):
                dirs.append(line.rstrip("/"))

    read_conf(inside(root, "/etc/ld.so.conf"))
    return list(dict.fromkeys(dirs + list(DEFAULT_LIBRARY_DIRS)))


def shared_objects(root: Path, dirs: list[str]) -> Iterator[tuple[str, Path]]:
    for directory in dirs:
        real = inside(root, directory)
        if not real.is_dir():
            continue
        for entry in sorted(real.iterdir()):
            if ".so" in entry.name and entry.is_file():
                yield directory, entry


def scan_rootfs(root: Path, name: str, arch: str, source: str) -> TargetData:
    dirs = library_dirs(root)
    sonames: set[str] = set()
    versions: dict[str, set[str]] = {}
    for _directory, path in shared_objects(root, dirs):
        real = path.resolve() if not path.is_symlink() else inside(root, "/" + str(path.relative_to(root)))
        try:
            with real.open("rb") as fh:
                if fh.read(4) != ELF_MAGIC:
                    continue
            info = parse_elf(path.name, real.read_bytes())
        except OSError:
            continue
        if info is None or info.elf_type != "ET_DYN":
            continue
        soname = info.soname or path.name
        sonames.add(soname)
        if info.version_defs:
            versions.setdefault(soname, set()).update(info.version_defs)
    interpreters: set[str] = set()
    commands: set[str] = set()
    for directory in PROGRAM_DIRS:
        real = inside(root, directory)
        if not real.is_dir():
            continue
        for entry in real.iterdir():
            target = inside(root, f"{directory}/{entry.name}")
            if target.is_file() and os.access(target, os.X_OK):
                interpreters.add(f"{directory}/{entry.name}")
                if directory in PATH_DIRS:
                    commands.add(entry.name)
    glibc = max((v for v in versions.get("libc.so.6", ()) if v.startswith("GLIBC_2")), key=version_tuple, default="")
    return {
        "name": name,
        "os": "linux",
        "arch": arch,
        "source": source,
        "glibc": glibc.removeprefix("GLIBC_"),
        "library_dirs": dirs,
        "sonames": sorted(sonames),
        "symbol_versions": {k: sorted(v, key=version_tuple) for k, v in sorted(versions.items())},
        "interpreters": sorted(interpreters),
        "commands": sorted(commands),
    }


def _run(argv: list[str]) -> None:
    tool = argv[0]
    if shutil.which(tool) is None:
        raise MissingToolError(f"{tool} is needed to read the image", hint="apt-get install qemu-utils e2fsprogs")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise HarnessError(f"{' '.join(argv[:3])}... failed ({done.returncode})", detail=done.stderr[-2000:])


def extract_image(image: Path, work: Path) -> Path:
    """Copy the loader's and programs' directories out of an ext4 qcow2/raw image."""
    raw = work / "root.raw"
    _run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)])
    root = work / "rootfs"
    root.mkdir()
    for directory in IMAGE_DIRS:
        parent = root / directory.lstrip("/")
        parent.parent.mkdir(parents=True, exist_ok=True)
        # debugfs copies symlinks as symlinks, so merged-/usr links survive; missing paths are skipped.
        subprocess.run(["debugfs", "-R", f"rdump {directory} {parent.parent}", str(raw)],
                       capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
    raw.unlink()
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.inspect.target_gen", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="a built VM image (qcow2 or raw, ext4 root)")
    source.add_argument("--rootfs", type=Path, help="an unpacked root file system")
    parser.add_argument("--name", required=True, help="target name, e.g. debian-12")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--describe", default="", help="where the image came from (recorded in 'source')")
    parser.add_argument("-o", "--output", type=Path, help=f"default: {TARGETS_DIR}/<name>.json")
    args = parser.parse_args(argv)
    output = args.output or TARGETS_DIR / f"{args.name}.json"
    try:
        if args.rootfs:
            if not args.rootfs.is_dir():
                raise UsageError(f"{args.rootfs} is not a directory", hint="pass an unpacked root file system")
            data = scan_rootfs(args.rootfs, args.name, args.arch, args.describe or f"rootfs {args.rootfs}")
        else:
            if not args.image.is_file():
                raise UsageError(f"image {args.image} does not exist", hint="build it: harness images build linux-debian12")
            with tempfile.TemporaryDirectory(prefix="target-gen-") as work:
                root = extract_image(args.image, Path(work))
                data = scan_rootfs(root, args.name, args.arch, args.describe or f"image {args.image.name}")
    except HarnessError as exc:
        print(f"target_gen: error: {exc}", file=sys.stderr)
        return 1
    output.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {output}: {len(data['sonames'])} sonames, glibc {data['glibc']}, {len(data['commands'])} commands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
