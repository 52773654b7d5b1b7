"""Tiny ELF files and layered release tarballs, written byte by byte for the tests (Mach-O:
harness.testing.macho_writer).

The binaries carry only what the inspector reads (dynamic section, symbol versions, load
commands), so each test states exactly the defect it plants. Real third-party binaries are
covered separately (test_inspect_real_wheels.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

# ---------------------------------------------------------------- ELF


def _strtab(strings: list[str]) -> tuple[bytes, dict[str, int]]:
    data, offsets = b"\0", {}
    for s in strings:
        if s not in offsets:
            offsets[s] = len(data)
            data += s.encode() + b"\0"
    return data, offsets


def make_elf(
    needed: tuple[str, ...] = (),
    soname: str = "",
    rpath: str = "",
    runpath: str = "",
    version_needs: dict[str, tuple[str, ...]] | None = None,
    version_defs: tuple[str, ...] = (),
    machine: int = 62,  # EM_X86_64; 183 = EM_AARCH64
    executable: bool = False,
) -> bytes:
    version_needs = version_needs or {}
    names = list(needed) + [soname, rpath, runpath] + list(version_needs) \
        + [v for vs in version_needs.values() for v in vs] + list(version_defs)
    dynstr, off = _strtab([n for n in names if n])
    dyn = b"".join(struct.pack("<QQ", 1, off[n]) for n in needed)
    for tag, value in ((14, soname), (15, rpath), (29, runpath)):
        if value:
            dyn += struct.pack("<QQ", tag, off[value])
    dyn += struct.pack("<QQ", 0, 0)
    verneed = b""
    libs = list(version_needs.items())
    for i, (lib, versions) in enumerate(libs):
        size = 16 + 16 * len(versions)
        verneed += struct.pack("<HHIII", 1, len(versions), off[lib], 16, size if i < len(libs) - 1 else 0)
        for j, v in enumerate(versions):
            verneed += struct.pack("<IHHII", 0, 0, 2 + j, off[v], 16 if j < len(versions) - 1 else 0)
    verdef = b""
    defs = ([soname or "self"] if version_defs else []) + list(version_defs)
    if version_defs and not soname:
        dynstr, off = _strtab([n for n in names + ["self"] if n])
    for i, name in enumerate(defs):
        flags = 1 if i == 0 else 0
        verdef += struct.pack("<HHHHIII", 1, flags, i + 1, 1, 0, 20, 28 if i < len(defs) - 1 else 0)
        verdef += struct.pack("<II", off[name], 0)
    shnames, shoff = _strtab([".dynstr", ".dynamic", ".gnu.version_r", ".gnu.version_d", ".shstrtab"])
    # (name, type, data, link, info, entsize)
    sections = [(".dynstr", 3, dynstr, 0, 0, 0), (".dynamic", 6, dyn, 1, 0, 16)]
    if verneed:
        sections.append((".gnu.version_r", 0x6FFFFFFE, verneed, 1, len(libs), 0))
    if verdef:
        sections.append((".gnu.version_d", 0x6FFFFFFD, verdef, 1, len(defs), 0))
    sections.append((".shstrtab", 3, shnames, 0, 0, 0))
    body, offsets = b"", []
    for _, _, data, _, _, _ in sections:
        while (64 + len(body)) % 8:
            body += b"\0"
        offsets.append(64 + len(body))
        body += data
    while (64 + len(body)) % 8:
        body += b"\0"
    e_shoff = 64 + len(body)
    shdrs = b"\0" * 64
    for (name, kind, data, link, info, entsize), offset in zip(sections, offsets):
        shdrs += struct.pack("<IIQQQQIIQQ", shoff[name], kind, 2, 0, offset, len(data), link, info, 8, entsize)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2 if executable else 3, machine, 1, 0, 0, e_shoff, 0,
                                 64, 56, 0, 64, len(sections) + 1, len(sections))
    return header + body + shdrs


# ---------------------------------------------------------------- releases


@dataclass
class Member:
    name: str
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""
    mtime: int = 1_700_000_000


def tar_bytes(members: list[Member], compression: str = "xz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w") as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type, info.mode, info.linkname, info.mtime = m.kind, m.mode, m.linkname, m.mtime
            if m.kind == tarfile.REGTYPE:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def layer_archive(target: str, files: dict[str, bytes], mode: int = 0o644, mtime: int = 1_700_000_000,
                  extra: list[Member] | None = None) -> bytes:
    members = [Member(f"{target}/{path}", data, 0o755 if "/bin/" in f"/{path}" else mode, mtime=mtime)
               for path, data in sorted(files.items())]
    return tar_bytes(members + (extra or []))


@dataclass
class Layer:
    target: str  # install target, e.g. "cpython3.11"
    files: dict[str, bytes]
    required: tuple[str, ...] = ()
    launch_module: str = ""
    archive_name: str = ""
    mtime: int = 1_700_000_000
    extra: list[Member] = field(default_factory=list)


def venvstacks_release(
    path: Path,
    layers: list[Layer],
    loose: dict[str, bytes] | None = None,
    export_dir: str = "server/stack_export_prod",
    top: str = "",
    tamper_hash: str = "",  # install target whose recorded sha256 is made wrong
    extra_archives: dict[str, bytes] | None = None,
    skip_metadata: tuple[str, ...] = (),
    loose_members: list[Member] | None = None,
) -> Path:
    """A release tarball laid out like Tiles': loose files, then layer archives with metadata."""
    prefix = f"{top}/" if top else ""
    members = [Member(f"{prefix}{name}", data, 0o755 if not name.endswith((".py", ".json", ".txt")) else 0o644)
               for name, data in sorted((loose or {}).items())]
    for layer in layers:
        archive = layer_archive(layer.target, layer.files, mtime=layer.mtime, extra=layer.extra)
        name = layer.archive_name or f"{layer.target}.tar.xz"
        meta = {
            "layer_name": layer.target, "install_target": layer.target, "archive_name": name,
            "archive_size": len(archive), "archive_build": 1,
            "archive_hashes": {"sha256": "0" * 64 if layer.target == tamper_hash else hashlib.sha256(archive).hexdigest()},
            "required_layers": list(layer.required), "target_platform": "linux_x86_64",
        }
        if layer.launch_module:
            meta["app_launch_module"] = layer.launch_module
        members.append(Member(f"{prefix}{export_dir}/{name}", archive))
        if layer.target not in skip_metadata:
            members.append(Member(f"{prefix}{export_dir}/__venvstacks__/env_metadata/{layer.target}.json",
                                  json.dumps(meta).encode()))
    for name, data in (extra_archives or {}).items():
        members.append(Member(f"{prefix}{export_dir}/{name}", data))
    members += loose_members or []
    path.write_bytes(tar_bytes(members, "gz"))
    return path


def good_layers() -> list[Layer]:
    """Runtime + framework + app, linked the way a relocatable venvstacks build is."""
    python = make_elf(needed=("libpython3.11.so.1.0", "libc.so.6"), runpath="$ORIGIN/../lib",
                      version_needs={"libc.so.6": ("GLIBC_2.2.5", "GLIBC_2.34")}, executable=True)
    libpython = make_elf(needed=("libc.so.6", "libm.so.6"), soname="libpython3.11.so.1.0",
                         version_needs={"libc.so.6": ("GLIBC_2.17",)})
    ext = make_elf(needed=("libc.so.6",), version_needs={"libc.so.6": ("GLIBC_2.14",)})
    wrapper = b"#!/bin/sh\nexec \"$(dirname \"$0\")/python_\" \"$@\"\n"
    return [
        Layer("cpython3.11", {"bin/python3.11": python, "lib/libpython3.11.so.1.0": libpython,
                              "lib/python3.11/os.py": b"# os\n" * 300, "postinstall.py": b"# post\n"}),
        Layer("framework-numpy", {"lib/python3.11/site-packages/numpy/_core.so": ext,
                                  "bin/python": wrapper, "postinstall.py": b"# post\n"}, required=("cpython3.11",)),
        Layer("app-server", {"lib/python3.11/site-packages/server/__init__.py": b"",
                             "lib/python3.11/site-packages/server/main.py": b"print('hi')\n",
                             "bin/python": wrapper, "postinstall.py": b"# post\n"},
              required=("framework-numpy",), launch_module="server.main"),
    ]


GOOD_LOOSE = {"refapp": b"#!/bin/sh\necho refapp\n", "server/main.py": b"print('main')\n", "modelfiles/tiny": b"FROM x\n"}
