"""Compare two releases layer by layer: did the content change, did the archive bytes change?

Layer archives are reproducible (venvstacks clamps mtimes and owners), so a layer whose
content is identical but whose archive bytes differ was re-packed for nothing: every user
downloads it again. The content digest ignores mtimes and owners on purpose.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from harness.inspect.archive import LayerArchive, ReleaseContents
from harness.inspect.findings import Finding
from harness.release_name import ReleaseName, try_parse_release_name


@dataclass(frozen=True)
class LayerChange:
    layer: str
    old_archive: str
    new_archive: str
    status: str  # added | removed | unchanged | content-changed | repacked-identical
    content_changed: bool
    archive_changed: bool
    old_bytes: int = 0
    new_bytes: int = 0


@dataclass(frozen=True)
class ReleaseDiff:
    old: str
    new: str
    layers: tuple[LayerChange, ...]
    loose_added: tuple[str, ...]
    loose_removed: tuple[str, ...]
    loose_changed: tuple[str, ...]
    findings: tuple[Finding, ...]
    old_version: str = ""  # from the tarball names, when they follow the release-name convention
    new_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _by_name(contents: ReleaseContents) -> dict[str, LayerArchive]:
    return {layer.name: layer for layer in contents.layers}


def _compare_layer(name: str, old: LayerArchive | None, new: LayerArchive | None) -> LayerChange:
    if old is None or new is None:
        present = new or old
        assert present is not None
        return LayerChange(name, old.path if old else "", new.path if new else "", "added" if new else "removed",
                           True, True, old.compressed_size if old else 0, new.compressed_size if new else 0)
    content = old.content_digest != new.content_digest
    archive = old.sha256 != new.sha256
    status = "content-changed" if content else ("repacked-identical" if archive else "unchanged")
    return LayerChange(name, old.path, new.path, status, content, archive, old.compressed_size, new.compressed_size)


def diff_releases(old: ReleaseContents, new: ReleaseContents) -> ReleaseDiff:
    old_layers, new_layers = _by_name(old), _by_name(new)
    changes = tuple(_compare_layer(name, old_layers.get(name), new_layers.get(name))
                    for name in sorted(set(old_layers) | set(new_layers)))
    old_loose = {old.relative(e.path): e.sha256 for e in old.files() if not e.archive and e.path not in {l.path for l in old.layers}}
    new_loose = {new.relative(e.path): e.sha256 for e in new.files() if not e.archive and e.path not in {l.path for l in new.layers}}
    findings = tuple(
        Finding("diff.repacked_identical_layer", "warning", change.new_archive,
                f"layer {change.layer} was re-published with identical content but different archive bytes "
                f"({change.new_bytes} bytes users download again)",
                "reuse the previous archive, or make the packing reproducible (clamp mtimes, sort entries)")
        for change in changes if change.status == "repacked-identical"
    )
    old_name, new_name = _name_of(old.source), _name_of(new.source)
    findings += version_findings(old_name, new_name, new.source)
    return ReleaseDiff(
        old=old.source,
        new=new.source,
        layers=changes,
        loose_added=tuple(sorted(set(new_loose) - set(old_loose))),
        loose_removed=tuple(sorted(set(old_loose) - set(new_loose))),
        loose_changed=tuple(sorted(p for p in set(old_loose) & set(new_loose) if old_loose[p] != new_loose[p])),
        findings=findings,
        old_version=old_name.version if old_name else "",
        new_version=new_name.version if new_name else "",
    )


def _name_of(source: str) -> ReleaseName | None:
    return try_parse_release_name(PurePath(source).name)


def version_findings(old: ReleaseName | None, new: ReleaseName | None, where: str) -> tuple[Finding, ...]:
    """Comparing across products or platforms, or backwards in version, is worth a warning."""
    if old is None or new is None:
        return ()
    if (old.product, old.platform) != (new.product, new.platform):
        return (Finding("diff.different_release", "warning", where,
                        f"comparing {old.product} {old.platform} with {new.product} {new.platform}",
                        "diff two builds of the same product and platform"),)
    if new.parsed < old.parsed:
        return (Finding("diff.version_went_back", "warning", where,
                        f"the new release {new.version} sorts before the old one {old.version}",
                        "pass the older release first: harness diff OLD NEW"),)
    return ()
