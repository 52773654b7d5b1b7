"""Mach-O (macOS) binaries: architectures, minimum OS, load commands, rpaths and signatures.

A small parser of our own reads thin and fat files straight from memory as the release streams by,
because neither library fits (bench/bench_macho.py, the 90 Mach-O files of the test wheels, 113 MB):
it takes 1.4-2 ms a pass, macholib 130-170 ms and opens only a path (bytes need its private
attributes set by hand), LIEF 250 ms plus 0.5 s to import a 3.6 MB native wheel (12 MB installed);
all three find the same dylibs, rpaths and signatures. What it extracts is only what dyld needs to
load a file on another Mac: which libraries, found where, on which architecture and OS version, and
whether the code is signed (arm64 code must be, at least ad hoc, or the kernel kills it).
"""

from __future__ import annotations

import posixpath
import struct
from collections import defaultdict
from dataclasses import dataclass, field

from harness.inspect.archive import Entry, ReleaseContents
from harness.inspect.findings import Finding
from harness.inspect.targets import Target, version_tuple

MH_MAGIC_32, MH_MAGIC_64 = 0xFEEDFACE, 0xFEEDFACF
FAT_MAGIC_32, FAT_MAGIC_64 = 0xCAFEBABE, 0xCAFEBABF
MAX_FAT_SLICES = 16  # Java class files share 0xCAFEBABE; their "count" is a version >= 45

MH_EXECUTE, MH_DYLIB, MH_BUNDLE = 0x2, 0x6, 0x8
LOADABLE_TYPES = {MH_EXECUTE: "executable", MH_DYLIB: "dylib", MH_BUNDLE: "bundle"}

LC_REQ_DYLD = 0x80000000
LC_LOAD_DYLIB, LC_ID_DYLIB, LC_LOAD_WEAK_DYLIB = 0xC, 0xD, 0x18 | LC_REQ_DYLD
LC_REEXPORT_DYLIB, LC_LAZY_LOAD_DYLIB, LC_LOAD_UPWARD_DYLIB = 0x1F | LC_REQ_DYLD, 0x20, 0x23 | LC_REQ_DYLD
LC_RPATH, LC_CODE_SIGNATURE = 0x1C | LC_REQ_DYLD, 0x1D
LC_VERSION_MIN_MACOSX, LC_BUILD_VERSION = 0x24, 0x32
DYLIB_COMMANDS = {LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LAZY_LOAD_DYLIB, LC_LOAD_UPWARD_DYLIB}
PLATFORM_MACOS = 1

CPU_ARCH_ABI64 = 0x01000000
CPU_TYPES = {7: "i386", 7 | CPU_ARCH_ABI64: "x86_64", 12: "arm", 12 | CPU_ARCH_ABI64: "arm64",
             12 | 0x02000000: "arm64_32", 18: "ppc", 18 | CPU_ARCH_ABI64: "ppc64"}
CPU_SUBTYPE_ARM64E = 2


@dataclass(frozen=True)
class MachOSlice:
    arch: str
    filetype: int
    dylibs: tuple[str, ...] = ()
    weak_dylibs: tuple[str, ...] = ()
    rpaths: tuple[str, ...] = ()
    install_id: str = ""
    minos: str = ""  # "11.0"
    signed: bool = False


@dataclass(frozen=True)
class MachOInfo:
    path: str
    slices: tuple[MachOSlice, ...] = field(default_factory=tuple)

    @property
    def archs(self) -> frozenset[str]:
        return frozenset(s.arch for s in self.slices)

    @property
    def loadable(self) -> bool:
        return any(s.filetype in LOADABLE_TYPES for s in self.slices)

    @property
    def is_executable(self) -> bool:
        return any(s.filetype == MH_EXECUTE for s in self.slices)

    def dependencies(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.slices:
            for name in s.dylibs + s.weak_dylibs:
                seen.setdefault(name, None)
        return list(seen)

    def rpaths(self) -> list[str]:
        return list(dict.fromkeys(r for s in self.slices for r in s.rpaths))


def _version(packed: int) -> str:
    major, minor, patch = packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def _cstring(data: bytes, start: int, end: int) -> str:
    raw = data[start:end]
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _parse_thin(data: bytes, offset: int) -> MachOSlice | None:
    if len(data) < offset + 28:
        return None
    magic_le = struct.unpack_from("<I", data, offset)[0]
    if magic_le in (MH_MAGIC_32, MH_MAGIC_64):
        endian = "<"
    elif struct.unpack_from(">I", data, offset)[0] in (MH_MAGIC_32, MH_MAGIC_64):
        endian = ">"
    else:
        return None
    magic, cputype, cpusubtype, filetype, ncmds, sizeofcmds, _flags = struct.unpack_from(endian + "7I", data, offset)
    arch = CPU_TYPES.get(cputype, f"cpu{cputype:#x}")
    if arch == "arm64" and cpusubtype & 0xFF == CPU_SUBTYPE_ARM64E:
        arch = "arm64e"
    cursor = offset + (32 if magic == MH_MAGIC_64 else 28)
    end = min(len(data), cursor + sizeofcmds)
    dylibs: list[str] = []
    weak: list[str] = []
    rpaths: list[str] = []
    install_id = minos = ""
    signed = False
    for _ in range(ncmds):
        if cursor + 8 > end:
            break
        cmd, cmdsize = struct.unpack_from(endian + "2I", data, cursor)
        if cmdsize < 8:
            break
        if cmd in DYLIB_COMMANDS or cmd == LC_ID_DYLIB:
            name = _cstring(data, cursor + struct.unpack_from(endian + "I", data, cursor + 8)[0], cursor + cmdsize)
            if cmd == LC_ID_DYLIB:
                install_id = name
            elif cmd == LC_LOAD_WEAK_DYLIB:
                weak.append(name)
            else:
                dylibs.append(name)
        elif cmd == LC_RPATH:
            rpaths.append(_cstring(data, cursor + struct.unpack_from(endian + "I", data, cursor + 8)[0], cursor + cmdsize))
        elif cmd == LC_BUILD_VERSION:
            platform, packed = struct.unpack_from(endian + "2I", data, cursor + 8)
            if platform == PLATFORM_MACOS or not minos:
                minos = _version(packed)
        elif cmd == LC_VERSION_MIN_MACOSX and not minos:
            minos = _version(struct.unpack_from(endian + "I", data, cursor + 8)[0])
        elif cmd == LC_CODE_SIGNATURE:
            signed = True
        cursor += cmdsize
    return MachOSlice(arch, filetype, tuple(dylibs), tuple(weak), tuple(rpaths), install_id, minos, signed)


def is_macho(head: bytes) -> bool:
    if len(head) < 8:
        return False
    be = struct.unpack_from(">I", head)[0]
    if be in (FAT_MAGIC_32, FAT_MAGIC_64):
        return 0 < struct.unpack_from(">I", head, 4)[0] <= MAX_FAT_SLICES
    le = struct.unpack_from("<I", head)[0]
    return le in (MH_MAGIC_32, MH_MAGIC_64) or be in (MH_MAGIC_32, MH_MAGIC_64)


def parse_macho(path: str, data: bytes) -> MachOInfo | None:
    """All slices of a thin or fat Mach-O file, or None when it is not one."""
    if not is_macho(data[:8]):
        return None
    magic = struct.unpack_from(">I", data)[0]
    if magic not in (FAT_MAGIC_32, FAT_MAGIC_64):
        thin = _parse_thin(data, 0)
        return MachOInfo(path, (thin,)) if thin else None
    count = struct.unpack_from(">I", data, 4)[0]
    slices = []
    for index in range(count):
        if magic == FAT_MAGIC_32:
            _cpu, _sub, offset, size, _align = struct.unpack_from(">5I", data, 8 + index * 20)
        else:
            _cpu, _sub, offset, size, _align, _res = struct.unpack_from(">2I2Q2I", data, 8 + index * 32)
        if offset + size > len(data):
            return None
        thin = _parse_thin(data, offset)
        if thin:
            slices.append(thin)
    return MachOInfo(path, tuple(slices)) if slices else None


class MachOCollector:
    """A content visitor that parses every Mach-O file the release stream carries."""

    def __init__(self) -> None:
        self.binaries: dict[str, MachOInfo] = {}

    def wants(self, entry: Entry, head: bytes) -> bool:
        return is_macho(head)

    def visit(self, entry: Entry, data: bytes) -> None:
        info = parse_macho(entry.path, data)
        if info is not None:
            self.binaries[entry.path] = info


@dataclass(frozen=True)
class Dependency:
    binary: str
    install_name: str
    where: str  # "release" | "system" | "external" | "" (unresolved)
    path: str = ""  # the deployed path when found in the release
    weak: bool = False


class DylibResolver:
    """Resolves install names the way dyld would, against the release's deployed tree."""

    def __init__(self, binaries: dict[str, MachOInfo], contents: ReleaseContents, target: Target) -> None:
        self.target = target
        self.paths = {e.path for e in contents.entries if e.kind in ("file", "symlink", "hardlink")}
        self.executables = [i for i in binaries.values() if i.is_executable]

    def _executable_dirs(self, info: MachOInfo) -> list[str]:
        # A plug-in's @executable_path is whichever program loads it: any executable shipped.
        own = [posixpath.dirname(info.path)] if info.is_executable else []
        return own + [posixpath.dirname(e.path) for e in self.executables if e.path != info.path]

    def _expand(self, info: MachOInfo, name: str) -> list[str]:
        loader = posixpath.dirname(info.path)
        if name.startswith("@loader_path/"):
            return [posixpath.join(loader, name[len("@loader_path/"):])]
        if name.startswith("@executable_path/"):
            return [posixpath.join(d, name[len("@executable_path/"):]) for d in self._executable_dirs(info)]
        return [name]

    def rpath_dirs(self, info: MachOInfo) -> list[str]:
        rpaths = info.rpaths() + [r for e in self.executables if e.path != info.path for r in e.rpaths()]
        return [d for r in dict.fromkeys(rpaths) for d in self._expand(info, r)]

    def resolve(self, info: MachOInfo, name: str, weak: bool = False) -> Dependency:
        if self.target.is_system_install_name(name):
            return Dependency(info.path, name, "system", name, weak)
        if name.startswith("@rpath/"):
            rest = name[len("@rpath/"):]
            candidates = [posixpath.join(d, rest) for d in self.rpath_dirs(info)]
        elif name.startswith("@"):
            candidates = self._expand(info, name)
        elif name.startswith("/"):
            return Dependency(info.path, name, "external", name, weak)
        else:
            candidates = []
        for candidate in candidates:
            if self.target.is_system_install_name(candidate):
                return Dependency(info.path, name, "system", candidate, weak)
            normal = posixpath.normpath(candidate)
            if normal in self.paths:
                return Dependency(info.path, name, "release", normal, weak)
        return Dependency(info.path, name, "", "", weak)

    def dependencies(self, info: MachOInfo) -> list[Dependency]:
        weak = {n for s in info.slices for n in s.weak_dylibs}
        return [self.resolve(info, name, name in weak) for name in info.dependencies()]


def _arch_matches(arch: str, wanted: str) -> bool:
    return arch == wanted or (wanted == "arm64" and arch == "arm64e")


def _check_slices(info: MachOInfo, target: Target) -> list[Finding]:
    path = info.path
    native = [s for s in info.slices if _arch_matches(s.arch, target.arch)]
    if not native:
        archs = ", ".join(sorted(info.archs))
        if target.arch == "arm64" and "x86_64" in info.archs:
            return [Finding("macho.rosetta_required", "error", path,
                            f"x86_64-only ({archs}): macOS asks to install Rosetta, which needs the network",
                            "ship an arm64 or universal2 build of this file")]
        return [Finding("macho.wrong_architecture", "error", path,
                        f"built for {archs}, target {target.name} is {target.arch}",
                        f"ship a {target.arch} build of this file")]
    findings = []
    for s in native:
        if s.minos and target.macos_version and version_tuple(s.minos) > version_tuple(target.macos_version):
            findings.append(Finding("macho.minos_too_new", "error", path,
                                    f"needs macOS {s.minos} ({s.arch}), target {target.name} is {target.macos_version}",
                                    f"build with MACOSX_DEPLOYMENT_TARGET={target.macos_version} or lower"))
        if not s.signed:
            arm = s.arch.startswith("arm64")
            findings.append(Finding("macho.unsigned", "error" if arm else "warning", path,
                                    f"{s.arch} slice has no code signature"
                                    + (": the kernel kills unsigned arm64 code" if arm else ""),
                                    "sign it (codesign --sign - for ad hoc) after the last edit of the file"))
    return findings


def check_macho(binaries: dict[str, MachOInfo], contents: ReleaseContents, target: Target) -> list[Finding]:
    loadable = {p: i for p, i in binaries.items() if i.loadable}
    if target.os != "macos":
        return [Finding("macho.foreign_binary", "warning", path, f"Mach-O binary in a release for {target.name}",
                        "drop binaries built for another platform from this release")
                for path in sorted(loadable)]
    resolver = DylibResolver(loadable, contents, target)
    findings: list[Finding] = []
    for path in sorted(loadable):
        info = loadable[path]
        findings += _check_slices(info, target)
        for rpath in info.rpaths():
            if rpath.startswith("/") and not target.is_system_install_name(rpath):
                findings.append(Finding("macho.absolute_rpath", "warning", path,
                                        f"LC_RPATH {rpath} points outside the release",
                                        "use @loader_path-relative rpaths (delocate-wheel rewrites them)"))
        for dep in resolver.dependencies(info):
            if dep.where == "external":
                findings.append(Finding("macho.external_dylib", "warning" if dep.weak else "error", path,
                                        f"loads {dep.install_name}, outside the release and outside /usr/lib and /System",
                                        "bundle the library and reference it via @rpath or @loader_path (delocate-wheel)"))
            elif dep.where == "":
                findings.append(Finding("macho.unresolved_reference", "warning" if dep.weak else "error", path,
                                        f"loads {dep.install_name}, which no rpath or loader path resolves inside the release",
                                        "ship the library where the reference points, or fix LC_RPATH"))
    return findings


def dependency_listing(binaries: dict[str, MachOInfo], contents: ReleaseContents, target: Target) -> dict[str, set[str]]:
    """Resolved dependency -> binaries that load it (release paths or system install names)."""
    resolver = DylibResolver({p: i for p, i in binaries.items() if i.loadable}, contents, target)
    listing: dict[str, set[str]] = defaultdict(set)
    for info in resolver.executables + [i for i in binaries.values() if i.loadable and not i.is_executable]:
        for dep in resolver.dependencies(info):
            listing[dep.path or dep.install_name].add(info.path)
    return dict(listing)
