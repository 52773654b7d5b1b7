"""Read a release in one streaming pass, nested layer archives included, without unpacking it.

The result is the *deployed view*: every member of a layer archive (``.../x.tar.xz``) is placed
beside that archive, as an installer that unpacks the layers as siblings would place it. Each
regular file is hashed; files that a :class:`ContentVisitor` asks for (binaries, shebang
scripts, metadata JSON) are handed over in memory while the stream passes, so nothing is
written to disk and each byte is decompressed once.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from harness.errors import UsageError
from harness.hashing import sha256_file
from harness.inspect.members import EntryKind, Member
from harness.inspect.pkg.reader import PackageFacts, payload_members, read_package

LAYER_SUFFIXES: tuple[str, ...] = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")
HEAD_BYTES = 4096
CHUNK = 1 << 20
MAX_VISIT_BYTES = 1 << 30  # a file larger than this is hashed but not parsed
# tarfile's stream reader copies its leftover buffer on every read (each 512-byte header
# included), so a small buffer is faster; decompression happens below it in C-backed files.
STREAM_BUFSIZE = 1 << 16
COMPRESSION_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gz"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bz2"))
XAR_MAGIC = b"xar!"  # macOS installer packages (.pkg) are xar archives
TAR_MAGIC_START, TAR_MAGIC_END = 257, 262  # "ustar" in a POSIX or GNU tar header
ReleaseFormat = Literal["tar.gz", "tar.xz", "tar.bz2", "tar", "zip", "directory", "pkg"]
_READ_ERRORS = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError, zipfile.BadZipFile)


@dataclass(frozen=True)
class Entry:
    path: str  # deployed path, relative to the release root
    member: str  # the name exactly as stored in its archive (for safety checks)
    archive: str  # "" for the release itself, else the deployed path of the layer archive
    kind: EntryKind
    mode: int
    size: int
    linkname: str = ""
    sha256: str = ""
    owner: str = ""  # "user:group" where the format records it (installer payloads)


@dataclass(frozen=True)
class LayerArchive:
    path: str  # deployed path of the archive file
    sha256: str
    compressed_size: int
    uncompressed_size: int
    file_count: int
    top_dirs: tuple[str, ...]
    content_digest: str  # over paths, kinds, modes and file hashes: not mtimes or owners
    error: str = ""

    @property
    def name(self) -> str:
        """The layer's install target: its single top directory, else the file name's stem."""
        if len(self.top_dirs) == 1:
            return self.top_dirs[0]
        base = posixpath.basename(self.path)
        return next((base[: -len(s)] for s in LAYER_SUFFIXES if base.endswith(s)), base)


class ContentVisitor(Protocol):
    """Something that wants the bytes of some files while the stream passes by."""

    def wants(self, entry: Entry, head: bytes) -> bool: ...

    def visit(self, entry: Entry, data: bytes) -> None: ...


@dataclass
class ReleaseContents:
    source: str
    size: int  # bytes of the release file as shipped
    sha256: str = ""  # of the release file, taken in the same pass ("" for a directory)
    entries: list[Entry] = field(default_factory=list)
    layers: list[LayerArchive] = field(default_factory=list)
    read_errors: list[tuple[str, str]] = field(default_factory=list)  # (path, what went wrong)
    package: PackageFacts | None = None  # an installer package's own facts (Distribution, scripts, signature)

    @cached_property
    def root(self) -> str:
        """The single top directory every entry sits in ('' when there is none)."""
        tops = {e.path.split("/", 1)[0] for e in self.entries if e.path}
        nested = any("/" in e.path for e in self.entries)
        if len(tops) == 1 and nested:
            (top,) = tops
            if all(e.kind == "dir" for e in self.entries if e.path == top):
                return top
        return ""

    def relative(self, path: str) -> str:
        root = self.root
        return path[len(root) + 1 :] if root and path.startswith(root + "/") else path

    def files(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.kind == "file")

    def paths(self) -> dict[str, Entry]:
        """Deployed path -> entry; the last writer wins, as on extraction."""
        return {e.path: e for e in self.entries}


class _ByteSource(Protocol):
    """The one method :func:`decompressed` needs of its input (a file, or a :class:`_HashingReader`)."""

    def read(self, size: int = -1, /) -> bytes: ...


class _HashingReader:
    """Passes reads through while hashing and counting them (a nested archive's own bytes)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.digest.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _tar_kind(info: tarfile.TarInfo) -> EntryKind:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "fifo"
    return "other"


def _tar_members(tar: tarfile.TarFile) -> Iterator[Member]:
    for info in tar:
        yield Member(
            name=info.name,
            kind=_tar_kind(info),
            mode=info.mode,
            size=info.size,
            linkname=info.linkname,
            open=partial(tar.extractfile, info),
        )


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        unix_mode = info.external_attr >> 16
        kind: EntryKind = "dir" if info.is_dir() else "file"
        linkname = ""
        if stat.S_ISLNK(unix_mode):
            kind = "symlink"
            linkname = archive.read(info).decode("utf-8", "replace")
        yield Member(
            name=info.filename,
            kind=kind,
            mode=(unix_mode & 0o7777) or (0o755 if kind == "dir" else 0o644),
            size=info.file_size,
            linkname=linkname,
            open=partial(archive.open, info),
        )


def _open_file(path: Path) -> IO[bytes]:
    return path.open("rb")


def _dir_members(root: Path) -> Iterator[Member]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath, name)
            st = full.lstat()
            rel = full.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                yield Member(rel, "symlink", st.st_mode & 0o7777, 0, os.readlink(full), lambda: None)
            elif stat.S_ISDIR(st.st_mode):
                yield Member(rel, "dir", st.st_mode & 0o7777, 0, "", lambda: None)
            elif stat.S_ISREG(st.st_mode):
                yield Member(rel, "file", st.st_mode & 0o7777, st.st_size, "", partial(_open_file, full))
            else:
                kind: EntryKind = "fifo" if stat.S_ISFIFO(st.st_mode) else "device"
                yield Member(rel, kind, st.st_mode & 0o7777, 0, "", lambda: None)


class _Peekable(io.RawIOBase):
    """Re-serves the first bytes read for sniffing, then reads through."""

    def __init__(self, inner: _ByteSource, head: bytes) -> None:
        self.inner, self.head = inner, head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def decompressed(stream: _ByteSource) -> IO[bytes]:
    """A plain byte stream over a gzip/xz/bzip2/uncompressed one, chosen by its magic bytes."""
    head = stream.read(6)
    source = io.BufferedReader(_Peekable(stream, head), CHUNK)
    kind = next((name for magic, name in COMPRESSION_MAGIC if head.startswith(magic)), "")
    if kind == "gz":
        # typeshed models GzipFile as a BufferedIOBase, not a typing.IO, though it is one at runtime
        return gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(source)
    if kind == "bz2":
        return bz2.BZ2File(source)
    return source


def deployed_path(prefix: str, member: str) -> str:
    """Where an extracting installer puts ``member`` (which may try to escape: '..' kept)."""
    name = member.lstrip("/")
    joined = posixpath.join(prefix, name) if prefix else name
    normal = posixpath.normpath(joined) if joined else ""
    return "" if normal == "." else normal


def is_layer_archive(name: str) -> bool:
    return name.endswith(LAYER_SUFFIXES)


def _content_digest(entries: Sequence[Entry], prefix: str) -> str:
    digest = hashlib.sha256()
    cut = len(prefix) + 1 if prefix else 0
    for e in sorted(entries, key=lambda e: e.path):
        digest.update(f"{e.path[cut:]}\0{e.kind}\0{e.mode & 0o7777:o}\0{e.sha256 or e.linkname}\n".encode())
    return digest.hexdigest()


class _Reader:
    def __init__(self, visitors: Sequence[ContentVisitor], nested: bool = True) -> None:
        self.visitors = visitors
        self.nested = nested
        self.contents: ReleaseContents

    def consume_file(self, entry: Entry, stream: IO[bytes]) -> str:
        head = stream.read(min(entry.size, HEAD_BYTES)) if entry.size else b""
        digest = hashlib.sha256(head)
        interested = [v for v in self.visitors if v.wants(entry, head)]
        if interested and entry.size <= MAX_VISIT_BYTES:
            rest = stream.read()
            digest.update(rest)
            data = head + rest
            for visitor in interested:
                visitor.visit(entry, data)
        else:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def walk(self, members: Iterator[Member], archive: str, prefix: str) -> list[Entry]:
        seen: list[Entry] = []
        for raw in members:
            path = deployed_path(prefix, raw.name)
            entry = Entry(path, raw.name, archive, raw.kind, raw.mode, raw.size, raw.linkname, owner=raw.owner)
            if raw.kind == "file":
                stream = raw.open()
                if stream is None:
                    continue
                with stream:
                    if not archive and self.nested and is_layer_archive(raw.name):
                        entry = self.read_layer(entry, stream)
                    else:
                        entry = replace(entry, sha256=self.consume_file(entry, stream))
            seen.append(entry)
            self.contents.entries.append(entry)
        return seen

    def read_layer(self, entry: Entry, stream: IO[bytes]) -> Entry:
        hashing = _HashingReader(stream)
        prefix = posixpath.dirname(entry.path)
        entries: list[Entry] = []
        error = ""
        try:
            with decompressed(hashing) as plain, tarfile.open(fileobj=plain, mode="r|", bufsize=STREAM_BUFSIZE) as tar:
                entries = self.walk(_tar_members(tar), entry.path, prefix)
        except _READ_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.contents.read_errors.append((entry.path, error))
        hashing.drain()
        tops = sorted({e.path[len(prefix) + 1 if prefix else 0 :].split("/", 1)[0] for e in entries})
        self.contents.layers.append(
            LayerArchive(
                path=entry.path,
                sha256=hashing.digest.hexdigest(),
                compressed_size=hashing.count,
                uncompressed_size=sum(e.size for e in entries if e.kind == "file"),
                file_count=sum(1 for e in entries if e.kind == "file"),
                top_dirs=tuple(t for t in tops if t),
                content_digest=_content_digest(entries, prefix),
                error=error,
            )
        )
        return replace(entry, sha256=hashing.digest.hexdigest(), size=hashing.count)


def sniff_format(path: Path) -> ReleaseFormat:
    """What a release input is, from its content (the suffix may lie): one judgement for every verb.

    Raises UsageError, naming what the file really is, for anything the harness cannot read.
    """
    if not path.exists():
        raise UsageError(f"release {path} does not exist", hint="pass the path of a built release tarball")
    if path.is_dir():
        if not any(path.iterdir()):
            raise UsageError(f"release directory {path} is empty: there is nothing to inspect",
                             hint="pass the release tarball, or the directory it was unpacked into")
        return "directory"
    if not path.is_file():
        raise UsageError(f"release {path} is not a regular file", hint="pass the release tarball itself")
    with path.open("rb") as raw:
        head = raw.read(TAR_MAGIC_END)
    if not head:
        raise UsageError(f"release {path} is empty (0 bytes)",
                         hint="the download or build was cut short: fetch or build it again")
    compression = next((name for magic, name in COMPRESSION_MAGIC if head.startswith(magic)), "")
    if compression:
        return f"tar.{compression}"  # type: ignore[return-value]  # one of the three literals
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(XAR_MAGIC):
        return "pkg"
    if head[TAR_MAGIC_START:TAR_MAGIC_END].startswith(b"ustar"):
        return "tar"
    raise UsageError(
        f"release {path} is not an archive: it starts with {_describe_head(head)}, not with gzip, xz, "
        "bzip2, zip or tar bytes",
        hint="pass the .tar.gz the product's build wrote (a download that saved an error page looks like this)")


def _describe_head(head: bytes) -> str:
    text = head[:40]
    if all(32 <= b < 127 or b in b"\t\r\n" for b in text):
        return f"the text {text.decode().strip()[:40]!r}"
    return f"the bytes {text[:8].hex(' ')}"


def read_release(path: Path, visitors: Sequence[ContentVisitor] = (), nested: bool = True) -> ReleaseContents:
    """Read a release tarball (.tar.gz/.tar.xz/.tar), a zip or wheel, an installer package (.pkg:
    its payloads in the deployed view, its own facts in ``package``), or a directory, to its end.

    A tarball is read once: decompressed to its last byte (so a cut download fails here, not in a
    VM) while the file's own sha256 is taken from the same bytes. ``nested=False`` leaves the layer
    archives inside it unopened (judging the release as a file, not inspecting its layers).
    """
    kind = sniff_format(path)
    reader = _Reader(visitors, nested)
    size = path.stat().st_size if path.is_file() else 0
    reader.contents = ReleaseContents(source=str(path), size=size)
    hashing: _HashingReader | None = None
    try:
        if kind == "directory":
            reader.walk(_dir_members(path), "", "")
        elif kind == "pkg":
            # Placed where the Installer puts it: each payload under its component's install-location.
            reader.contents.package = read_package(path)
            for component, members in payload_members(path, reader.contents.package):
                reader.walk(members, "", component.prefix)
        elif kind == "zip":
            with zipfile.ZipFile(path) as archive:
                reader.walk(_zip_members(archive), "", "")
            reader.contents.sha256 = sha256_file(path)
        else:
            with path.open("rb") as raw:
                hashing = _HashingReader(raw)
                with decompressed(hashing) as plain:
                    with tarfile.open(fileobj=plain, mode="r|", bufsize=STREAM_BUFSIZE) as tar:
                        reader.walk(_tar_members(tar), "", "")
                    # Past the tar's end marker: the compressor's own trailer (its checksum) too.
                    while plain.read(CHUNK):
                        pass
                hashing.drain()
                reader.contents.sha256 = hashing.digest.hexdigest()
    except _READ_ERRORS as exc:
        where = ""
        if hashing is not None:
            where = (f": its {size:,} bytes end before the archive does" if hashing.count >= size
                     else f" at byte {hashing.count:,} of {size:,}")
        raise UsageError(
            f"release {path} is truncated or corrupt{where} ({type(exc).__name__} reading it as {kind}: {exc})",
            hint="the file was cut short or damaged on its way here: download or build it again, and compare "
            "its sha256 with the published checksums",
        ) from exc
    if not reader.contents.entries and reader.contents.package is None:
        raise UsageError(f"release {path} holds no files", hint="pass the release the product's build wrote")
    return reader.contents

