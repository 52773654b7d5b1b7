"""Layout: the release has the shape its profile promises, and its venvstacks metadata holds.

Expectations come from a profile's ``[layout]`` table through :func:`expectations_from_layout`,
the only place that knows that table's keys. The venvstacks checks need no profile: every
``__venvstacks__`` metadata file found in the release is checked against the archives beside it.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.inspect.archive import Entry, LayerArchive, ReleaseContents
from harness.inspect.findings import Finding

METADATA_DIR = "__venvstacks__"
METADATA_MAX_BYTES = 4 << 20


@dataclass(frozen=True)
class LayoutExpectations:
    """What a profile says the release looks like; paths are relative to the release root."""

    required_paths: tuple[str, ...] = ()  # glob patterns that must match at least one entry
    forbidden_paths: tuple[str, ...] = ()  # glob patterns that must match nothing
    layers_dir: str = ""  # where the layer archives live, e.g. "server/stack_export_prod"
    layers: tuple[str, ...] = ()  # install targets that must be present, e.g. "cpython3.13"
    launch_module: str = ""  # e.g. "server.main"; also taken from venvstacks metadata


_LAYOUT_KEYS = {
    "required_paths": ("required_paths", "required"),
    "forbidden_paths": ("forbidden_paths", "forbidden", "exclude"),
    "layers_dir": ("layers_dir", "layer_dir", "stack_dir"),
    "layers": ("layers", "required_layers"),
    "launch_module": ("launch_module",),
}


def expectations_from_layout(table: Mapping[str, Any] | None) -> LayoutExpectations:
    """Map a profile's ``[layout]`` table onto expectations (unknown keys are ignored)."""
    if not table:
        return LayoutExpectations()
    values: dict[str, Any] = {}
    for field_name, keys in _LAYOUT_KEYS.items():
        for key in keys:
            if key in table:
                value = table[key]
                if field_name in ("layers_dir", "launch_module"):
                    if not isinstance(value, str):
                        raise UsageError(f"profile [layout] {key} must be a string, not {value!r}")
                    values[field_name] = value.strip("/") if field_name == "layers_dir" else value
                else:
                    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                        raise UsageError(f"profile [layout] {key} must be a list of strings, not {value!r}")
                    values[field_name] = tuple(value)
                break
    # The CLI binary and the server directory a profile names must exist too.
    named = tuple(str(table[key]) for key in ("cli", "server") if isinstance(table.get(key), str) and table[key])
    values["required_paths"] = tuple(dict.fromkeys(named + values.get("required_paths", ())))
    return LayoutExpectations(**values)


def _matches(path: str, pattern: str) -> bool:
    """fnmatch with '**/' also matching at the top level (git-style)."""
    if fnmatch.fnmatchcase(path, pattern):
        return True
    return pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])


class MetadataCollector:
    """A content visitor that keeps venvstacks' ``__venvstacks__/**.json`` metadata files."""

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.unreadable: dict[str, str] = {}

    def wants(self, entry: Entry, head: bytes) -> bool:
        return (f"/{METADATA_DIR}/" in f"/{entry.path}" and entry.path.endswith(".json")
                and entry.size <= METADATA_MAX_BYTES)

    def visit(self, entry: Entry, data: bytes) -> None:
        try:
            self.documents[entry.path] = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            self.unreadable[entry.path] = str(exc)


@dataclass(frozen=True)
class LayerRecord:
    """One layer as venvstacks' metadata describes it."""

    source: str  # metadata file it came from
    export_dir: str  # the directory holding __venvstacks__ and the archives
    install_target: str
    archive_name: str
    sha256: str = ""
    archive_size: int | None = None
    required_layers: tuple[str, ...] = ()
    launch_module: str = ""
    names: tuple[str, ...] = field(default_factory=tuple)  # every name the layer goes by


def _layer_dicts(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict):
        if "archive_name" in document or "install_target" in document:
            return [document]
        return [d for value in document.values() for d in _layer_dicts(value)]
    if isinstance(document, list):
        return [d for value in document for d in _layer_dicts(value)]
    return []


def layer_records(documents: Mapping[str, Any]) -> list[LayerRecord]:
    records: dict[tuple[str, str, str], LayerRecord] = {}
    for path in sorted(documents, key=lambda p: ("env_metadata" not in p, p)):
        export_dir = path.split(f"/{METADATA_DIR}/")[0] if f"/{METADATA_DIR}/" in path else ""
        for layer in _layer_dicts(documents[path]):
            target = str(layer.get("install_target") or layer.get("layer_name") or "")
            archive = str(layer.get("archive_name") or "")
            key = (export_dir, target, archive)
            if key in records:
                continue
            hashes = layer.get("archive_hashes") or {}
            records[key] = LayerRecord(
                source=path,
                export_dir=export_dir,
                install_target=target,
                archive_name=archive,
                sha256=str(hashes.get("sha256", "")) if isinstance(hashes, dict) else "",
                archive_size=layer.get("archive_size") if isinstance(layer.get("archive_size"), int) else None,
                required_layers=tuple(str(r) for r in layer.get("required_layers") or ()),
                launch_module=str(layer.get("app_launch_module") or ""),
                names=tuple(str(n) for n in (layer.get("layer_name"), target) if n),
            )
    return list(records.values())


def launch_module_found(module: str, contents: ReleaseContents, layers: list[LayerArchive]) -> bool:
    """Whether ``a.b`` exists as a.b.py / a/b.py / a/b/__init__.py at a root Python would search."""
    parts = module.split(".")
    suffixes = ["/".join(parts) + ".py", "/".join(parts) + "/__init__.py", "/".join(parts) + "/__main__.py"]
    roots = {contents.root, ""} | {posixpath.join(posixpath.dirname(layer.path), top)
                                   for layer in layers for top in layer.top_dirs}
    for entry in contents.files():
        for suffix in suffixes:
            if entry.path.endswith("/" + suffix) or entry.path == suffix:
                base = entry.path[: -len(suffix)].rstrip("/")
                if base in roots or base.endswith(("site-packages", "/launch")) or posixpath.basename(base).startswith("app-"):
                    return True
    return False


def _venvstacks_findings(records: list[LayerRecord], contents: ReleaseContents) -> list[Finding]:
    findings: list[Finding] = []
    archives = {layer.path: layer for layer in contents.layers}
    present_names = {layer.name for layer in contents.layers} | {n for r in records for n in r.names}
    for record in records:
        if not record.archive_name:
            continue
        path = posixpath.join(record.export_dir, record.archive_name) if record.export_dir else record.archive_name
        archive = archives.get(path)
        if archive is None:
            findings.append(Finding("layout.layer_archive_missing", "error", path,
                                    f"{record.source} lists layer {record.install_target} but its archive is not in the release",
                                    "ship the archive next to __venvstacks__ or re-run venvstacks publish"))
            continue
        if record.sha256 and record.sha256 != archive.sha256:
            findings.append(Finding("layout.archive_hash_mismatch", "error", path,
                                    f"sha256 {archive.sha256[:16]}... but {record.source} says {record.sha256[:16]}...",
                                    "re-publish the layers and ship the archives with the metadata of the same publish"))
        elif record.archive_size is not None and record.archive_size != archive.compressed_size:
            findings.append(Finding("layout.archive_hash_mismatch", "error", path,
                                    f"{archive.compressed_size} bytes but {record.source} says {record.archive_size}",
                                    "re-publish the layers and ship the archives with the metadata of the same publish"))
        if record.install_target and archive.top_dirs and record.install_target not in archive.top_dirs:
            findings.append(Finding("layout.archive_top_mismatch", "error", path,
                                    f"unpacks to {', '.join(archive.top_dirs)}, metadata says {record.install_target}",
                                    "publish the archive again so that its top directory is the layer's install target"))
        for required in record.required_layers:
            if required not in present_names:
                findings.append(Finding("layout.required_layer_missing", "error", path,
                                        f"layer {record.install_target} requires {required}, which the release does not ship",
                                        f"add the {required} layer archive and its metadata"))
        if record.launch_module and not launch_module_found(record.launch_module, contents, contents.layers):
            findings.append(Finding("layout.launch_module_missing", "error", path,
                                    f"launch module {record.launch_module} of {record.install_target} is not in the release",
                                    "ship the module in the application layer (venvstacks launch_module)"))
    listed = {posixpath.join(r.export_dir, r.archive_name) if r.export_dir else r.archive_name for r in records}
    if records:
        for layer in contents.layers:
            if layer.path not in listed:
                findings.append(Finding("layout.unlisted_layer_archive", "warning", layer.path,
                                        "layer archive that no venvstacks metadata mentions",
                                        "remove stale archives: wipe the export directory before venvstacks publish"))
    return findings


def _duplicate_layer_findings(contents: ReleaseContents) -> list[Finding]:
    by_name: dict[str, list[LayerArchive]] = defaultdict(list)
    for layer in contents.layers:
        by_name[layer.name].append(layer)
    return [Finding("layout.duplicate_layer_archive", "error", archives[0].path,
                    f"layer {name} is shipped {len(archives)} times: {', '.join(a.path for a in archives)}",
                    "ship exactly one archive per layer: wipe the export directory before venvstacks publish")
            for name, archives in sorted(by_name.items()) if len(archives) > 1]


def _expectation_findings(expect: LayoutExpectations, contents: ReleaseContents) -> list[Finding]:
    findings = []
    relative = [contents.relative(e.path) for e in contents.entries]
    # Archives need not store directory members: a file's parents exist once it is unpacked.
    existing = set(relative) | {posixpath.dirname(p) for p in relative}
    for path in list(existing):
        while path:
            path = posixpath.dirname(path)
            existing.add(path)
    for pattern in expect.required_paths:
        if not any(_matches(p, pattern.strip("/")) for p in existing if p):
            findings.append(Finding("layout.missing_path", "error", pattern, "the profile requires this path; the release has none",
                                    "add it to the release, or fix the profile's [layout] required_paths"))
    for pattern in expect.forbidden_paths:
        hits = [p for p in relative if _matches(p, pattern)]
        if hits:
            findings.append(Finding("layout.forbidden_path", "warning", hits[0],
                                    f"{len(hits)} path(s) match the excluded pattern {pattern!r}",
                                    "exclude them when bundling the release"))
    if expect.layers_dir:
        for layer in contents.layers:
            if posixpath.dirname(contents.relative(layer.path)) != expect.layers_dir:
                findings.append(Finding("layout.layer_archive_misplaced", "error", layer.path,
                                        f"layer archive outside {expect.layers_dir}, where the installer looks for layers",
                                        f"move it into {expect.layers_dir}"))
    present = {layer.name for layer in contents.layers}
    for name in expect.layers:
        if name not in present:
            findings.append(Finding("layout.required_layer_missing", "error", expect.layers_dir or "(release)",
                                    f"the profile expects layer {name}; the release has {', '.join(sorted(present)) or 'none'}",
                                    f"add the {name} layer archive"))
    if expect.launch_module and not launch_module_found(expect.launch_module, contents, contents.layers):
        findings.append(Finding("layout.launch_module_missing", "error", expect.launch_module,
                                "the profile's launch module is not in the release",
                                "ship the module, or fix the profile's [layout] launch_module"))
    return findings


def check_layout(contents: ReleaseContents, metadata: MetadataCollector, expect: LayoutExpectations) -> list[Finding]:
    findings = [Finding("layout.metadata_unreadable", "error", path, f"venvstacks metadata is not valid JSON: {err}",
                        "re-run venvstacks publish") for path, err in sorted(metadata.unreadable.items())]
    records = layer_records(metadata.documents)
    findings += _venvstacks_findings(records, contents)
    findings += _duplicate_layer_findings(contents)
    return findings + _expectation_findings(expect, contents)
