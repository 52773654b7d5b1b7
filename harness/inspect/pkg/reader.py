"""Read a flat installer package in two streaming passes over its xar container (libarchive).

The first pass keeps the small members (Distribution, each PackageInfo, the Scripts archives) and
skips the payloads by seeking; the second streams each component's Payload (gzip or plain cpio
through libarchive, pbzx through :mod:`harness.inspect.pkg.pbzx`) member by member to the
caller, so a multi-gigabyte payload is never held in memory or written to disk.
"""

from __future__ import annotations

import io
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

import libarchive  # type: ignore[import-untyped]  # libarchive-c ships no type information
from libarchive.exception import ArchiveError  # type: ignore[import-untyped]

from harness.errors import UsageError
from harness.inspect.members import EntryKind, Member
from harness.inspect.pkg.facts import (
    Distribution,
    PackageInfo,
    parse_distribution,
    parse_package_info,
)
from harness.inspect.pkg.pbzx import PBZX_MAGIC, PbzxError, pbzx_chunks
from harness.inspect.pkg.streams import BlockStream
from harness.inspect.pkg.xar_toc import Signature, read_toc
from harness.release_name import ReleaseName, ReleaseNameError, parse_version

MAX_SCRIPT_BYTES = 1 << 20  # scripts are read whole; a larger one is cut for the privilege scan
BLOCK = 1 << 16
COMPONENT_FILES = ("PackageInfo", "Payload", "Scripts", "Bom")


@dataclass(frozen=True)
class Component:
    name: str  # its directory in a product archive, "" for a component package on its own
    info: PackageInfo
    has_payload: bool = False

    @property
    def prefix(self) -> str:
        """Where the payload lands, as a deployed path relative to the volume root."""
        return self.info.install_location.strip("/")

    def label(self, member: str) -> str:
        return f"{self.name}/{member}" if self.name else member


@dataclass(frozen=True)
class PkgScript:
    component: str
    name: str  # as stored in the Scripts archive, without "./"
    mode: int
    text: str

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


@dataclass(frozen=True)
class PackageFacts:
    kind: Literal["product", "component"]
    distribution: Distribution | None
    components: tuple[Component, ...]
    scripts: tuple[PkgScript, ...]
    signature: Signature
    members: tuple[str, ...]  # every xar member name

    def main_component(self) -> Component | None:
        """The product's own component: the first choice's first pkg-ref, else the only one."""
        dist = self.distribution
        by_id = {c.info.identifier: c for c in self.components}
        first = next((ref for choice in dist.choices for ref in choice.refs if ref in by_id), "") if dist else ""
        return by_id.get(first) or (self.components[0] if len(self.components) == 1 else None)

    def release_name(self) -> ReleaseName | None:
        """A package named by its product (``tiles.pkg``) still says what it is: the product and
        version from its main component's identifier and PackageInfo, the architecture the
        Installer runs it as (arm64 when hostArchitectures allows it, else x86_64 under Rosetta)."""
        main = self.main_component()
        if main is None or not main.info.identifier:
            return None
        try:
            version = parse_version(main.info.version)
        except ReleaseNameError:
            return None
        arches = self.distribution.host_architectures if self.distribution else ()
        arch = "arm64" if not arches and self.distribution is None or "arm64" in arches else "x86_64"
        product = main.info.identifier.rsplit(".", 1)[-1]
        return ReleaseName(product, main.info.version, arch, "darwin", "", version)


def _blocks(entry: Any) -> Iterator[bytes]:
    """An entry's data cut at its recorded size: libarchive's xar reader hands out a stored
    (uncompressed) member's data padded with the heap bytes after it."""
    left = entry.size or 0
    for block in entry.get_blocks(BLOCK):
        if left <= 0:
            break
        yield block[:left]
        left -= len(block)


def _kind(entry: Any) -> EntryKind:
    if entry.isreg:
        return "file"
    if entry.isdir:
        return "dir"
    if entry.issym:
        return "symlink"
    if entry.islnk:
        return "hardlink"
    if entry.isblk or entry.ischr:
        return "device"
    return "fifo" if entry.isfifo else "other"


def _split(name: str) -> tuple[str, str]:
    """(component directory, file) for a xar member such as ``tiles.pkg/Payload``."""
    directory, base = posixpath.split(name.strip("/"))
    return directory, base


def _scripts(path: Path, component: str, blocks: Iterator[bytes]) -> list[PkgScript]:
    stream = BlockStream(blocks)
    found = []
    with libarchive.stream_reader(stream, block_size=BLOCK) as archive:
        for entry in archive:
            if not entry.isreg:
                continue
            data = bytearray()
            for block in entry.get_blocks(BLOCK):
                if len(data) < MAX_SCRIPT_BYTES:
                    data += block
            found.append(PkgScript(component, entry.pathname.removeprefix("./"), stat.S_IMODE(entry.mode),
                                   bytes(data[:MAX_SCRIPT_BYTES]).decode("utf-8", "replace")))
    if stream.error is not None:
        raise stream.error
    return found


def _unreadable(path: Path, member: str, exc: Exception) -> UsageError:
    return UsageError(f"package {path} is truncated or corrupt: {member} cannot be read ({type(exc).__name__}: {exc})",
                      hint="download or build the package again and compare its checksum with the published one")


def read_package(path: Path) -> PackageFacts:
    """The package's own facts (no payload read): UsageError naming the file for anything that
    is not a whole flat package."""
    _toc, signature = read_toc(path)
    distribution: Distribution | None = None
    infos: dict[str, PackageInfo] = {}
    payloads: set[str] = set()
    scripts: list[PkgScript] = []
    members: list[str] = []
    member = ""
    try:
        with libarchive.file_reader(str(path), "xar") as archive:
            for entry in archive:
                member = entry.pathname
                members.append(member)
                directory, base = _split(member)
                if base == "Distribution" and not directory:
                    distribution = parse_distribution(b"".join(_blocks(entry)), f"{path}: Distribution")
                elif base == "PackageInfo":
                    infos[directory] = parse_package_info(b"".join(_blocks(entry)), f"{path}: {member}")
                elif base == "Payload":
                    payloads.add(directory)
                elif base == "Scripts" and entry.isreg:
                    scripts += _scripts(path, directory, _blocks(entry))
    except (ArchiveError, OSError, PbzxError) as exc:
        raise _unreadable(path, member or "the container", exc) from exc
    if not infos and distribution is None:
        raise UsageError(f"package {path} is a xar archive with neither a Distribution nor a PackageInfo: "
                         "not an installer package", hint="pass the .pkg productbuild or pkgbuild wrote")
    components = tuple(Component(name, info, name in payloads) for name, info in sorted(infos.items()))
    return PackageFacts("product" if distribution is not None else "component", distribution, components,
                        tuple(scripts), signature, tuple(members))


def _entry_stream(entry: Any) -> IO[bytes]:
    return io.BufferedReader(BlockStream(entry.get_blocks(BLOCK)), BLOCK)


def _payload_members(path: Path, component: Component, blocks: Iterator[bytes]) -> Iterator[Member]:
    carrier = BlockStream(blocks)
    outer = io.BufferedReader(carrier, BLOCK)
    decoded: BlockStream | None = None
    fmt = "all"
    if outer.peek(4)[:4] == PBZX_MAGIC:
        decoded, fmt = BlockStream(pbzx_chunks(outer)), "cpio"
    try:
        with libarchive.stream_reader(decoded or outer, format_name=fmt, block_size=BLOCK) as archive:
            for entry in archive:
                yield Member(name=entry.pathname, kind=_kind(entry), mode=stat.S_IMODE(entry.mode),
                             size=entry.size or 0, linkname=entry.linkpath or "",
                             open=partial(_entry_stream, entry), owner=f"{entry.uid}:{entry.gid}")
        error = carrier.error or (decoded.error if decoded is not None else None)
        if error is not None:
            raise error
    except (ArchiveError, OSError, PbzxError) as exc:
        raise _unreadable(path, component.label("Payload"), exc) from exc


def payload_members(path: Path, package: PackageFacts) -> Iterator[tuple[Component, Iterator[Member]]]:
    """Each component with a payload and that payload's members, streamed in archive order."""
    by_name = {c.name: c for c in package.components if c.has_payload}
    member = ""
    try:
        with libarchive.file_reader(str(path), "xar") as archive:
            for entry in archive:
                member = entry.pathname
                directory, base = _split(member)
                if base == "Payload" and directory in by_name:
                    yield by_name[directory], _payload_members(path, by_name[directory], _blocks(entry))
    except (ArchiveError, OSError, PbzxError) as exc:
        raise _unreadable(path, member or "the container", exc) from exc
