"""Deterministic tar.gz writer: sorted members, uid/gid 0, fixed mtimes, gzip without name/mtime."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path, PurePosixPath

from .tree import Member, ReleaseTree


def _parents(names: list[str]) -> set[str]:
    dirs: set[str] = set()
    for name in names:
        for parent in PurePosixPath(name).parents:
            if str(parent) != ".":
                dirs.add(str(parent))
    return dirs


def _info(name: str, mtime: int, mode: int, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tarball(tree: ReleaseTree, target: Path, mtime: int) -> None:
    entries: list[tuple[str, Member | None]] = [(d, None) for d in _parents(list(tree.members))]
    entries += list(tree.members.items())
    entries += list(tree.raw_members.items())
    entries.sort(key=lambda item: item[0])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, member in entries:
            if member is None:
                archive.addfile(_info(name, mtime, 0o755, tarfile.DIRTYPE))
            else:
                archive.addfile(_info(name, mtime, member.mode, tarfile.REGTYPE, len(member.data)),
                                io.BytesIO(member.data))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    with tmp.open("wb") as handle, gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0,
                                                   compresslevel=6) as gz:
        gz.write(raw.getvalue())
    tmp.replace(target)
