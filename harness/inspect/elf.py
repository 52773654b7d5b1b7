"""ELF (Linux) binaries: what each one needs, and whether the target system provides it.

A NEEDED library resolves through RPATH (when there is no RUNPATH), RUNPATH (``$ORIGIN``
expanded against the binary's deployed directory) or the target's base system, the way the
dynamic loader would look; a library found only by name elsewhere in the release is reported
as information, since it loads only when a launcher sets ``LD_LIBRARY_PATH`` (venvstacks'
wrappers do). Symbol versions (GLIBC_2.x, GLIBCXX_3.4.x, ...) are checked against whichever
library satisfies the need: one shipped in the release, or the target's.
"""

from __future__ import annotations

import io
import posixpath
from collections import defaultdict
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import Dynamic, DynamicSection, DynamicSegment, DynamicTag
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.segments import InterpSegment

from harness.inspect.archive import Entry, ReleaseContents
from harness.inspect.findings import Finding
from harness.inspect.targets import Target, version_tuple

ELF_MAGIC = b"\x7fELF"
ORIGIN_TOKENS = ("$ORIGIN", "${ORIGIN}")
MACHINES = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i386", "EM_ARM": "arm"}
TARGET_MACHINES = {"x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


@dataclass(frozen=True)
class ElfInfo:
    path: str
    machine: str
    elf_type: str  # ET_DYN, ET_EXEC, ET_REL
    soname: str = ""
    interpreter: str = ""
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    version_needs: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (library, versions)
    version_defs: tuple[str, ...] = ()


def _split_paths(values: list[str]) -> tuple[str, ...]:
    return tuple(p for v in values for p in v.split(":") if p)


def _tag_string(tag: DynamicTag, attribute: str) -> str:
    """The string pyelftools attaches to a DT_NEEDED/RPATH/RUNPATH/SONAME tag.

    pyelftools sets it with ``setattr`` under the tag's lowercased name, so it has no declared type.
    """
    value = getattr(tag, attribute, None)
    if not isinstance(value, str):
        raise TypeError(f"pyelftools gave {tag.entry.d_tag} no string .{attribute} (got {value!r})")
    return value


def parse_elf(path: str, data: bytes) -> ElfInfo | None:
    """The dynamic-linking facts of one ELF file, or None when it is not a readable ELF."""
    try:
        elf = ELFFile(io.BytesIO(data))
        needed: list[str] = []
        rpath: list[str] = []
        runpath: list[str] = []
        soname = interpreter = ""
        needs: list[tuple[str, tuple[str, ...]]] = []
        defs: list[str] = []
        dynamic: Dynamic | None = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
        if dynamic is None:
            dynamic = next((s for s in elf.iter_segments() if isinstance(s, DynamicSegment)), None)
        if dynamic is not None:
            for tag in dynamic.iter_tags():
                kind = tag.entry.d_tag
                if kind == "DT_NEEDED":
                    needed.append(_tag_string(tag, "needed"))
                elif kind == "DT_RPATH":
                    rpath.append(_tag_string(tag, "rpath"))
                elif kind == "DT_RUNPATH":
                    runpath.append(_tag_string(tag, "runpath"))
                elif kind == "DT_SONAME":
                    soname = _tag_string(tag, "soname")
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for verneed, auxes in section.iter_versions():
                    if verneed.name is None:  # GNUVerNeedSection always names the file
                        raise TypeError("pyelftools gave a version need without a file name")
                    needs.append((verneed.name, tuple(aux.name for aux in auxes)))
            elif isinstance(section, GNUVerDefSection):
                for verdef, auxes in section.iter_versions():
                    if verdef.entry.vd_flags & 0x1:  # VER_FLG_BASE names the file itself
                        continue
                    first = next(iter(auxes), None)
                    if first is not None:
                        defs.append(first.name)
        for segment in elf.iter_segments():
            if isinstance(segment, InterpSegment):  # what pyelftools makes of a PT_INTERP header
                interpreter = segment.get_interp_name()
        return ElfInfo(
            path=path,
            machine=MACHINES.get(elf.header.e_machine, str(elf.header.e_machine)),
            elf_type=str(elf.header.e_type),
            soname=soname,
            interpreter=interpreter,
            needed=tuple(needed),
            rpath=_split_paths(rpath),
            runpath=_split_paths(runpath),
            version_needs=tuple(needs),
            version_defs=tuple(defs),
        )
    except (ELFError, ValueError, KeyError, AssertionError, IndexError, UnicodeDecodeError):
        return None


class ElfCollector:
    """A content visitor that parses every ELF file the release stream carries."""

    def __init__(self) -> None:
        self.binaries: dict[str, ElfInfo] = {}
        self.unreadable: list[str] = []

    def wants(self, entry: Entry, head: bytes) -> bool:
        return head.startswith(ELF_MAGIC)

    def visit(self, entry: Entry, data: bytes) -> None:
        info = parse_elf(entry.path, data)
        if info is None:
            self.unreadable.append(entry.path)
        else:
            self.binaries[entry.path] = info


@dataclass(frozen=True)
class Resolution:
    needed: str
    where: str  # "release" | "system" | "by-name" | ""
    path: str = ""  # deployed path when found in the release


class ReleaseLibraries:
    """Where a binary's NEEDED libraries come from: the release itself or the target."""

    def __init__(self, contents: ReleaseContents, target: Target) -> None:
        self.target = target
        self.paths = {e.path for e in contents.entries if e.kind in ("file", "symlink", "hardlink")}
        self.by_name: dict[str, list[str]] = defaultdict(list)
        for path in sorted(self.paths):
            self.by_name[posixpath.basename(path)].append(path)

    def search_dirs(self, info: ElfInfo) -> list[str]:
        # The loader ignores RPATH when RUNPATH is present.
        entries = list(info.runpath) if info.runpath else list(info.rpath)
        origin = posixpath.dirname(info.path)
        dirs = []
        for entry in entries:
            for token in ORIGIN_TOKENS:
                entry = entry.replace(token, origin if origin else ".")
            if not entry.startswith("/"):
                dirs.append(posixpath.normpath(entry))
        return dirs

    def resolve(self, info: ElfInfo, needed: str) -> Resolution:
        if "/" in needed:
            local = posixpath.normpath(posixpath.join(posixpath.dirname(info.path), needed))
            return Resolution(needed, "release", local) if local in self.paths else Resolution(needed, "")
        for directory in self.search_dirs(info):
            candidate = posixpath.join(directory, needed) if directory != "." else needed
            if candidate in self.paths:
                return Resolution(needed, "release", candidate)
        if needed in self.target.sonames:
            return Resolution(needed, "system")
        if self.by_name.get(needed):
            return Resolution(needed, "by-name", self.by_name[needed][0])
        return Resolution(needed, "")


def _version_check_id(version: str) -> str:
    if version.startswith("GLIBC_"):
        return "elf.glibc_too_new"
    if version.startswith(("GLIBCXX_", "CXXABI_")):
        return "elf.glibcxx_too_new"
    return "elf.symbol_version_missing"


def _missing_versions(
    versions: tuple[str, ...], resolution: Resolution, binaries: dict[str, ElfInfo], target: Target
) -> list[str]:
    if resolution.where in ("release", "by-name"):
        provider = binaries.get(resolution.path)
        available = set(provider.version_defs) if provider else set()
        return [v for v in versions if available and v not in available]
    if resolution.where == "system":
        system = target.symbol_versions.get(resolution.needed)
        if system:
            return [v for v in versions if v not in system]
        if target.glibc:
            limit = version_tuple(target.glibc)
            return [v for v in versions if v.startswith("GLIBC_2") and version_tuple(v) > limit]
    return []


def _check_search_path(info: ElfInfo, libs: ReleaseLibraries, target: Target) -> list[Finding]:
    findings = []
    for kind, entries in (("RUNPATH", info.runpath), ("RPATH", info.rpath)):
        for entry in entries:
            if entry.startswith(ORIGIN_TOKENS):
                expanded = libs.search_dirs(ElfInfo(info.path, "", "", runpath=(entry,)))
                if expanded and expanded[0].startswith(".."):
                    findings.append(Finding(
                        "elf.rpath_escapes", "error", info.path,
                        f"{kind} {entry} points outside the release",
                        "point it at a directory the release ships, relative to $ORIGIN",
                    ))
                continue
            system_dir = entry.rstrip("/") in target.library_dirs
            findings.append(Finding(
                "elf.absolute_rpath", "warning" if system_dir else "error", info.path,
                f"absolute {kind} {entry}" + ("" if system_dir else " (a directory of the build machine)"),
                "use $ORIGIN-relative paths (patchelf --set-rpath '$ORIGIN/../lib')",
            ))
    return findings


def check_elf(binaries: dict[str, ElfInfo], contents: ReleaseContents, target: Target) -> list[Finding]:
    if target.os != "linux":
        return [
            Finding("elf.foreign_binary", "warning", path, f"Linux ELF binary in a release for {target.name}",
                    "drop binaries built for another platform from this release")
            for path in sorted(binaries)
        ]
    libs = ReleaseLibraries(contents, target)
    want_machine = TARGET_MACHINES.get(target.arch, target.arch)
    findings: list[Finding] = []
    for path in sorted(binaries):
        info = binaries[path]
        if info.elf_type == "ET_REL":
            continue
        if info.machine != want_machine:
            findings.append(Finding("elf.wrong_architecture", "error", path,
                                    f"built for {info.machine}, target {target.name} is {target.arch}",
                                    f"ship a {target.arch} build of this file"))
            continue
        findings += _check_search_path(info, libs, target)
        if info.interpreter and posixpath.basename(info.interpreter) not in target.sonames:
            findings.append(Finding("elf.unresolved_needed", "error", path,
                                    f"program interpreter {info.interpreter} is not on {target.name}",
                                    "link against the target's standard dynamic loader"))
        resolutions = {needed: libs.resolve(info, needed) for needed in info.needed}
        for needed, res in resolutions.items():
            if res.where == "":
                findings.append(Finding(
                    "elf.unresolved_needed", "error", path,
                    f"needs {needed}, found neither in the release nor on {target.name}",
                    f"bundle {needed} beside the binary and add $ORIGIN to its RUNPATH (auditwheel repair does this)",
                ))
            elif res.where == "by-name":
                findings.append(Finding(
                    "elf.needed_off_search_path", "info", path,
                    f"needs {needed}: the release ships it at {res.path}, off this binary's RPATH/RUNPATH"
                    " (loads only if already loaded by another binary or named by LD_LIBRARY_PATH)",
                    "add the library's directory to RUNPATH relative to $ORIGIN",
                ))
        by_check: dict[str, list[str]] = defaultdict(list)
        for library, versions in info.version_needs:
            res = resolutions.get(library) or libs.resolve(info, library)
            for version in _missing_versions(versions, res, binaries, target):
                by_check[_version_check_id(version)].append(f"{library}:{version}")
        for check, missing in sorted(by_check.items()):
            highest = max(missing, key=lambda m: version_tuple(m.split(":", 1)[1]))
            findings.append(Finding(
                check, "error", path,
                f"needs {highest.replace(':', ' ')}"
                + (f" and {len(missing) - 1} more symbol version(s)" if len(missing) > 1 else "")
                + f", which {target.name} (glibc {target.glibc or '?'}) does not provide",
                "build on an older base (a manylinux image or the oldest supported distribution)",
            ))
    return findings


def versioned_symbols(binaries: dict[str, ElfInfo]) -> dict[str, set[str]]:
    """Library -> every symbol version any binary of the release requires from it."""
    merged: dict[str, set[str]] = defaultdict(set)
    for info in binaries.values():
        for library, versions in info.version_needs:
            merged[library].update(versions)
    return dict(merged)


def highest_version(binaries: dict[str, ElfInfo], prefix: str) -> str:
    found = [v for versions in versioned_symbols(binaries).values() for v in versions if v.startswith(prefix)]
    return max(found, key=version_tuple, default="")
