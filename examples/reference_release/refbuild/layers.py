"""Edited copies of a published layer archive, for the variants whose defect sits inside a layer
(a leaked build path, a stdlib extension left out). Cached by the input archive and the edit."""

from __future__ import annotations

import hashlib
import io
import lzma
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .cache import cached_dir
from .config import BuildPaths
from .hashing import digest_paths, sha256_file


def ensure_edited_layer(paths: BuildPaths, archive: Path, label: str, add: Mapping[str, bytes] | None = None,
                        drop: Sequence[str] = ()) -> Path:
    """``archive`` with ``add`` (names relative to the layer's top directory) written in and every
    member whose name ends with one of ``drop`` left out; a drop that matches nothing is an error."""
    add = dict(add or {})
    key = digest_paths([Path(__file__)], extra=[sha256_file(archive), label, *sorted(add), *drop,
                                                 *(hashlib.sha256(v).hexdigest() for _, v in sorted(add.items()))])

    def produce(tmp: Path) -> None:
        out = io.BytesIO()
        dropped: set[str] = set()
        with tarfile.open(archive, "r:xz") as src, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
            top = ""
            for info in src:
                top = top or info.name.split("/", 1)[0]
                hit = next((d for d in drop if info.name.endswith(d)), None)
                if hit is not None:
                    dropped.add(hit)
                    continue
                data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
                dst.addfile(info, io.BytesIO(data) if data is not None else None)
                last = info
            for name, data in sorted(add.items()):
                member = tarfile.TarInfo(f"{top}/{name}")
                member.size, member.mode, member.mtime = len(data), 0o644, last.mtime
                dst.addfile(member, io.BytesIO(data))
        missing = set(drop) - dropped
        if missing:
            raise ValueError(f"{archive.name} has no member ending with {sorted(missing)}")
        (tmp / archive.name).write_bytes(lzma.compress(out.getvalue(), preset=1))

    return cached_dir(paths.cache("edited-layer", key), f"edited layer archive for variant {label}", produce) / archive.name


