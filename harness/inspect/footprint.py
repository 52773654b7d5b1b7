"""Footprint: where the release's bytes go, and which bytes it ships more than once.

Sizes are per layer (compressed archive and unpacked files) plus the release's own loose
files. Identical files stored in more than one layer waste ``size * (copies - 1)`` bytes
after installation: candidates for moving into a shared lower layer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.inspect.archive import ReleaseContents
from harness.inspect.findings import Finding

LARGEST_FILES = 15
DUPLICATE_GROUPS = 25
MIN_DUPLICATE_BYTES = 1024  # tiny files (empty __init__.py, licences) are not worth reporting
WASTE_WARNING_FRACTION = 0.10
LOOSE = "(release)"  # the files outside any layer archive


@dataclass(frozen=True)
class LayerSize:
    name: str
    archive: str
    compressed_bytes: int
    uncompressed_bytes: int
    files: int


@dataclass(frozen=True)
class DuplicateGroup:
    sha256: str
    size: int
    paths: tuple[str, ...]
    layers: tuple[str, ...]

    @property
    def wasted_bytes(self) -> int:
        return self.size * (len(self.paths) - 1)


@dataclass(frozen=True)
class Footprint:
    release_bytes: int
    uncompressed_bytes: int
    layers: tuple[LayerSize, ...]
    largest_files: tuple[tuple[str, int], ...]
    duplicates: tuple[DuplicateGroup, ...] = field(default_factory=tuple)
    duplicate_groups_total: int = 0
    wasted_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duplicates"] = [{**asdict(d), "wasted_bytes": d.wasted_bytes} for d in self.duplicates]
        data["largest_files"] = [{"path": p, "bytes": s} for p, s in self.largest_files]
        return data


def measure_footprint(contents: ReleaseContents) -> Footprint:
    layer_names = {layer.path: layer.name for layer in contents.layers}
    layer_paths = set(layer_names)
    files = [e for e in contents.files() if e.path not in layer_paths]
    loose = [e for e in files if not e.archive]
    sizes = [LayerSize(LOOSE, "", contents.size, sum(e.size for e in loose), len(loose))]
    sizes += [LayerSize(layer.name, layer.path, layer.compressed_size, layer.uncompressed_size, layer.file_count)
              for layer in contents.layers]
    by_hash: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for e in files:
        if e.size >= MIN_DUPLICATE_BYTES:
            by_hash[e.sha256].append((e.path, layer_names.get(e.archive, LOOSE), e.size))
    groups = []
    for digest, copies in by_hash.items():
        layers = sorted({layer for _, layer, _ in copies})
        if len(layers) > 1:
            groups.append(DuplicateGroup(digest, copies[0][2], tuple(sorted(p for p, _, _ in copies)), tuple(layers)))
    groups.sort(key=lambda g: (-g.wasted_bytes, g.paths))
    largest = sorted(((e.path, e.size) for e in files), key=lambda item: (-item[1], item[0]))[:LARGEST_FILES]
    return Footprint(
        release_bytes=contents.size,
        uncompressed_bytes=sum(e.size for e in files),
        layers=tuple(sizes),
        largest_files=tuple(largest),
        duplicates=tuple(groups[:DUPLICATE_GROUPS]),
        duplicate_groups_total=len(groups),
        wasted_bytes=sum(g.wasted_bytes for g in groups),
    )


def footprint_findings(footprint: Footprint) -> list[Finding]:
    if not footprint.wasted_bytes:
        return []
    share = footprint.wasted_bytes / max(footprint.uncompressed_bytes, 1)
    top = footprint.duplicates[0]
    return [Finding(
        "footprint.cross_layer_duplicates", "warning" if share >= WASTE_WARNING_FRACTION else "info",
        top.paths[0],
        f"{footprint.duplicate_groups_total} file(s) stored in several layers waste {footprint.wasted_bytes} bytes "
        f"({share:.1%} of the unpacked release); largest: {len(top.paths)} copies of {top.size} bytes in {', '.join(top.layers)}",
        "move shared files into one lower layer that the others require",
    )]
