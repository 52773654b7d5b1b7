"""Byte streams between libarchive's block iterators and the readers that consume them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, Protocol


class ByteSource(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class BlockStream(io.RawIOBase):
    """A readable stream over an iterator of byte blocks.

    libarchive calls ``readinto`` from a C callback, where a raised exception would only be
    printed; so a failure is kept in ``error`` and reported as the end of the stream, and the
    caller raises it once libarchive returns.
    """

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.pending = memoryview(b"")
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            while not self.pending:
                self.pending = memoryview(next(self.blocks))
        except StopIteration:
            return 0
        except Exception as exc:  # noqa: BLE001  (kept for the caller; see the class docstring)
            self.error = exc
            return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n
