"""Small release files for tests of what is judged before a VM: whole, cut short, unsafe."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path


def small_release(path: Path, members: dict[str, bytes] | None = None, links: dict[str, str] | None = None,
                  top: str = "refapp") -> Path:
    """A gzip tarball shaped like a release: files (and symlinks) under one top directory; names
    starting with '/' or '../' are stored as given, the way a careless build stores them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    members = members if members is not None else {"install.sh": b"#!/bin/sh\nexit 0\n"}
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name if name.startswith(("/", "../")) else f"{top}/{name}")
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


def large_release(path: Path, size: int = 3 << 20) -> Path:
    """A release bigger than a megabyte whose bytes do not compress (cutting it cuts real data)."""
    return small_release(path, {"model.bin": os.urandom(size), "install.sh": b"#!/bin/sh\nexit 0\n"})
