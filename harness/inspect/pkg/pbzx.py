"""Apple's pbzx payload encoding, decoded by hand: libarchive does not read it.

A pbzx stream is ``pbzx``, a big-endian 64-bit chunk size, then chunks of (64-bit flags,
64-bit length, data); a chunk's data is one xz stream, or stored as is when its length equals
the chunk size. The decoded bytes are a cpio archive.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Iterator

from harness.inspect.pkg.streams import ByteSource

PBZX_MAGIC = b"pbzx"
_WORD = struct.Struct(">Q")
_CHUNK_HEAD = struct.Struct(">QQ")
XZ_MAGIC = b"\xfd7zXZ\x00"
STEP = 1 << 20


class PbzxError(ValueError):
    """The stream is not whole pbzx."""


def _exact(source: ByteSource, count: int) -> bytes:
    data = source.read(count)
    if len(data) != count:
        raise PbzxError(f"pbzx stream ends {count - len(data)} bytes early")
    return data


def pbzx_chunks(source: ByteSource) -> Iterator[bytes]:
    """Decoded bytes, a bounded piece at a time (a chunk is decompressed incrementally)."""
    if source.read(4) != PBZX_MAGIC:
        raise PbzxError("not a pbzx stream")
    _exact(source, _WORD.size)
    while head := source.read(_CHUNK_HEAD.size):
        if len(head) != _CHUNK_HEAD.size:
            raise PbzxError("pbzx chunk header cut short")
        _flags, length = _CHUNK_HEAD.unpack(head)
        first = _exact(source, min(length, len(XZ_MAGIC)))
        left = length - len(first)
        if not first.startswith(XZ_MAGIC):
            yield first
            while left:
                piece = _exact(source, min(left, STEP))
                left -= len(piece)
                yield piece
            continue
        decoder = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        pending = first
        while True:
            if pending:
                try:
                    yield decoder.decompress(pending)
                except lzma.LZMAError as exc:
                    raise PbzxError(f"pbzx chunk is not valid xz: {exc}") from exc
            if not left:
                break
            pending = _exact(source, min(left, STEP))
            left -= len(pending)
        if not decoder.eof:
            raise PbzxError("pbzx chunk's xz stream is incomplete")
