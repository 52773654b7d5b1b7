"""Human-readable tables for inspection reports and release diffs (JSON comes from to_dict)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.images import current_digest
from harness.inspect.diff import ReleaseDiff
from harness.inspect.findings import Report
from harness.inspect.targets import Target, known_targets, load_target
from harness.report.formatting import human_bytes
from harness.text_table import text_table


def _footprint(footprint: dict[str, Any]) -> list[str]:
    out = ["", "Footprint"]
    rows = [[layer["name"], layer["archive"] or "-", human_bytes(layer["compressed_bytes"]),
             human_bytes(layer["uncompressed_bytes"]), str(layer["files"])] for layer in footprint["layers"]]
    out.append(text_table(rows, ["layer", "archive", "compressed", "unpacked", "files"]))
    out.append(f"(release) compressed = the whole release file; unpacked total {human_bytes(footprint['uncompressed_bytes'])}")
    if footprint["largest_files"]:
        largest = [[human_bytes(f["bytes"]), f["path"]] for f in footprint["largest_files"][:10]]
        out += ["", "Largest files", text_table(largest, ["size", "path"])]
    if footprint["duplicates"]:
        rows = [[human_bytes(d["wasted_bytes"]), str(len(d["paths"])), ", ".join(d["layers"]), d["paths"][0]]
                for d in footprint["duplicates"][:10]]
        out += ["", (f"Identical files in several layers: {footprint['duplicate_groups_total']} group(s), "
                     f"{human_bytes(footprint['wasted_bytes'])} wasted"),
                text_table(rows, ["wasted", "copies", "layers", "first copy"])]
    return out


def _package(report: Report) -> list[str]:
    """An installer package's facts first, and its privileged changes before any other finding."""
    facts = report.stats.get("package")
    if not facts:
        return []
    out = ["", f"Package ({facts['kind']} archive)"]
    dist = facts["distribution"]
    if dist:
        out.append(f"  host architectures: {', '.join(dist['host_architectures']) or '(not declared)'}; allowed macOS: "
                   + (", ".join(f"{o['min'] or '-'}..{o['before'] or ''}" for o in dist["allowed_os"]) or "(any)")
                   + f"; script checks: {', '.join(dist['script_checks']) or 'none'}")
        out += [f"  choice {c['id']}: {', '.join(c['pkg_refs'])}" for c in dist["choices"]]
        out += [f"  pkg-ref {r['id']} {r['version']} -> {r['location']}" for r in dist["pkg_refs"]]
    for c in facts["components"]:
        out.append(f"  component {c['name'] or '(root)'}: {c['identifier']} {c['version']} at {c['install_location']}"
                   + (f", relocatable: {', '.join(c['relocatable'])}" if c["relocatable"] else ""))
    out += [f"  script {s['path']} mode {s['mode']}" for s in facts["scripts"]]
    sig = facts["signature"]
    out.append("  signature: " + (f"{sig['style']} {' <- '.join(sig['chain'])}" if sig["signed"] else "unsigned")
               + f"; stapled ticket: {'yes' if sig['stapled'] else 'no'}")
    privileged = [f for f in report.findings if f.check == "pkg.privileged_change"]
    if privileged:
        out += ["", f"Privileged changes ({len(privileged)}), made as root outside the product's own files",
                text_table([[f.path, f.message] for f in privileged], ["where", "what"])]
    return out


def target_lines(name: str, source: str, image_digest: Callable[[str], str] = current_digest) -> list[str]:
    """The target as what it is, a description of a system, and the image it stands for by that
    image's own name and digest (the pair `harness images list` and the sign-off show)."""
    detail = f" ({source})" if source else ""
    target: Target | None = load_target(name) if name in known_targets() else None
    if target is None or not target.image:
        return [f"Target:  {name}{detail}"]
    lines = [f"Target:  {name}, the list of what image {target.image} provides{detail}"]
    digest = image_digest(target.image)
    if not digest:
        return [*lines, f"Image:   {target.image}, not built on this host (harness images build {target.image})"]
    lines.append(f"Image:   {target.image}, digest {digest}")
    if target.image_build and target.image_build != digest:
        lines.append(f"         the target list was read from an earlier build of {target.image}; "
                     "regenerate it with python -m harness.inspect.target_gen")
    return lines


def render_report(report: Report, image_digest: Callable[[str], str] = current_digest) -> str:
    data = report.to_dict()
    counts = data["counts"]
    out = [f"Release: {report.release}", *target_lines(report.target, report.stats.get("target_source", ""), image_digest),
           (f"Read:    {report.stats.get('files', 0)} files, {report.stats.get('elf_binaries', 0)} ELF, "
            f"{report.stats.get('macho_binaries', 0)} Mach-O, {report.stats.get('scripts', 0)} scripts "
            f"in {report.stats.get('duration_s', 0)} s")]
    out += _package(report)
    out += _footprint(report.footprint)
    out += ["", f"Findings: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"]
    if report.findings:
        rows = []
        for f in report.findings:
            rows.append([f.severity, f.check, f.path, f.message])
            if f.hint:
                rows.append(["", "", "", f"fix: {f.hint}"])
        out.append(text_table(rows, ["severity", "check", "path", "message"]))
    out += ["", "Result: " + ("FAIL" if counts["error"] else "PASS")]
    return "\n".join(out)


def render_diff(diff: ReleaseDiff) -> str:
    rows = [[c.layer, c.status, "yes" if c.content_changed else "no", "yes" if c.archive_changed else "no",
             human_bytes(c.old_bytes), human_bytes(c.new_bytes)] for c in diff.layers]
    out = [f"Old: {diff.old}" + (f" (version {diff.old_version})" if diff.old_version else ""),
           f"New: {diff.new}" + (f" (version {diff.new_version})" if diff.new_version else ""), "",
           text_table(rows, ["layer", "status", "content changed", "archive changed", "old size", "new size"])]
    for label, paths in (("added", diff.loose_added), ("removed", diff.loose_removed), ("changed", diff.loose_changed)):
        if paths:
            shown = ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")
            out.append(f"Files outside layers {label}: {shown}")
    for f in diff.findings:
        out.append(f.line())
    return "\n".join(out)
