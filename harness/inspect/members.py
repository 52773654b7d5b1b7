"""One archive member as any reader yields it, before it is placed in the deployed view.

Tarballs, zips, directories and installer-package payloads all hand :class:`Member` values to
the one walker in :mod:`harness.inspect.archive`, so every format gets the same hashing, nested
layer reading and content visitors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Literal

EntryKind = Literal["file", "dir", "symlink", "hardlink", "device", "fifo", "other"]


@dataclass(frozen=True)
class Member:
    name: str
    kind: EntryKind
    mode: int
    size: int
    linkname: str
    open: Callable[[], IO[bytes] | None]
    owner: str = ""  # "user:group" where the format records it (installer payloads)
