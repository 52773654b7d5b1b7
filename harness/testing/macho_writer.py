"""Tiny Mach-O files written byte by byte (no compiler for Apple targets on a Linux host).

They carry only what the inspector reads (load commands: dylibs, rpaths, minimum OS, a code
signature command), for the harness's own tests and its Tiles-shaped fixture packages.
"""

from __future__ import annotations

import struct

CPU = {"x86_64": (0x01000007, 3), "arm64": (0x0100000C, 0)}


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def make_macho_slice(
    arch: str = "arm64",
    filetype: int = 6,  # MH_DYLIB; 2 = MH_EXECUTE, 8 = MH_BUNDLE
    dylibs: tuple[str, ...] = ("/usr/lib/libSystem.B.dylib",),
    weak: tuple[str, ...] = (),
    rpaths: tuple[str, ...] = (),
    minos: str = "11.0",
    signed: bool = True,
    install_id: str = "",
) -> bytes:
    cmds = []
    if install_id:
        name = _pad8(install_id.encode() + b"\0")
        cmds.append(struct.pack("<6I", 0xD, 24 + len(name), 24, 0, 0, 0) + name)
    for lib, cmd in [(d, 0xC) for d in dylibs] + [(w, 0x80000018) for w in weak]:
        name = _pad8(lib.encode() + b"\0")
        cmds.append(struct.pack("<6I", cmd, 24 + len(name), 24, 2, 0x10000, 0x10000) + name)
    for rpath in rpaths:
        path = _pad8(rpath.encode() + b"\0")
        cmds.append(struct.pack("<3I", 0x8000001C, 12 + len(path), 12) + path)
    major, minor = (int(p) for p in minos.split("."))
    cmds.append(struct.pack("<6I", 0x32, 24, 1, (major << 16) | (minor << 8), (major << 16), 0))
    if signed:
        cmds.append(struct.pack("<4I", 0x1D, 16, 4096, 16))
    cputype, subtype = CPU[arch]
    blob = b"".join(cmds)
    header = struct.pack("<8I", 0xFEEDFACF, cputype, subtype, filetype, len(cmds), len(blob), 0x85, 0)
    return header + blob + b"\0" * 64


def make_fat(*slices: tuple[str, bytes]) -> bytes:
    header = struct.pack(">2I", 0xCAFEBABE, len(slices))
    offset, entries, payload = 4096, b"", b""
    for arch, data in slices:
        cputype, subtype = CPU[arch]
        entries += struct.pack(">5I", cputype, subtype, offset + len(payload), len(data), 12)
        payload += data + b"\0" * (-len(data) % 4096)
    return (header + entries).ljust(offset, b"\0") + payload
