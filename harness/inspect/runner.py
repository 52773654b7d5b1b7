"""Inspect a release: one streaming read, then every check area over what was read."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.inspect.archive import ReleaseContents, read_release
from harness.inspect.archive_safety import check_archive_safety
from harness.inspect.elf import ElfCollector, check_elf, highest_version
from harness.inspect.findings import Finding, Report, sort_findings
from harness.inspect.footprint import footprint_findings, measure_footprint
from harness.inspect.layout import (
    LayoutExpectations,
    MetadataCollector,
    check_layout,
    expectations_from_layout,
)
from harness.inspect.macho import MachOCollector, check_macho
from harness.inspect.pkg.checks import check_package, package_facts
from harness.inspect.scripts import ShebangCollector, check_scripts
from harness.inspect.targets import Target, load_target
from harness.journal import GenericRecord, Journal
from harness.profile import Profile, load_profile, select_profile
from harness.release_name import ReleaseName, try_parse_release_name

DEFAULT_LINUX_TARGET = "debian-12"
DEFAULT_MACOS_TARGET = "macos-14"
PROFILE_OS = {"linux": "linux", "macos": "darwin"}  # profile [os.<name>] keys follow `uname -s`


@dataclass
class Collected:
    """Everything the single pass over a release produced."""

    contents: ReleaseContents
    elf: ElfCollector
    macho: MachOCollector
    scripts: ShebangCollector
    metadata: MetadataCollector


def collect(release: Path) -> Collected:
    elf, macho, scripts, metadata = ElfCollector(), MachOCollector(), ShebangCollector(), MetadataCollector()
    contents = read_release(release, (elf, macho, scripts, metadata))
    return Collected(contents, elf, macho, scripts, metadata)


def default_target(collected: Collected, name: ReleaseName | None = None) -> Target:
    """The OS the tarball's name says; an installer package is macOS; without either, macOS when
    the release carries more loadable Mach-O than ELF files, else Linux."""
    if collected.contents.package is not None:
        return load_target(DEFAULT_MACOS_TARGET)
    if name is not None:
        return load_target(DEFAULT_MACOS_TARGET if name.os == "darwin" else DEFAULT_LINUX_TARGET)
    macho = sum(1 for info in collected.macho.binaries.values() if info.loadable)
    return load_target(DEFAULT_MACOS_TARGET if macho > len(collected.elf.binaries) else DEFAULT_LINUX_TARGET)


def inspect_collected(collected: Collected, target: Target, layout: LayoutExpectations) -> Report:
    contents = collected.contents
    footprint = measure_footprint(contents)
    findings: list[Finding] = []
    findings += check_archive_safety(contents, target)
    findings += check_layout(contents, collected.metadata, layout)
    findings += check_macho(collected.macho.binaries, contents, target)
    findings += check_elf(collected.elf.binaries, contents, target)
    findings += [Finding("elf.unreadable", "warning", p, "starts like an ELF file but cannot be parsed",
                         "check that the file is not truncated") for p in collected.elf.unreadable]
    findings += check_scripts(collected.scripts.scripts, contents, target)
    findings += footprint_findings(footprint)
    if contents.package is not None:
        findings += check_package(contents.package, contents, target)
    stats = {
        "entries": len(contents.entries),
        "files": sum(1 for _ in contents.files()),
        "layers": [layer.name for layer in contents.layers],
        "elf_binaries": len(collected.elf.binaries),
        "macho_binaries": len(collected.macho.binaries),
        "scripts": len(collected.scripts.scripts),
        "max_glibc": highest_version(collected.elf.binaries, "GLIBC_"),
        "max_glibcxx": highest_version(collected.elf.binaries, "GLIBCXX_"),
        "target_source": target.source,
    }
    if contents.package is not None:
        stats["package"] = package_facts(contents.package)
    return Report(release=contents.source, target=target.name, findings=sort_findings(findings),
                  footprint=footprint.to_dict(), stats=stats)


def profile_layout(profile: str | Profile, target: Target, name: ReleaseName | None = None,
                   variants: Sequence[str] = ()) -> LayoutExpectations:
    """The ``[layout]`` of a profile (built-in name, TOML path, or one loaded already) as it
    applies to ``target``'s OS and, when the tarball's name tells it, the release's version."""
    loaded = profile if isinstance(profile, Profile) else load_profile(profile)
    resolved = select_profile(loaded, PROFILE_OS[target.os],
                              name.parsed if name is not None else None, variants)
    return expectations_from_layout(resolved.layout_table())


def inspect_release(
    release: Path,
    target: Target | str | None = None,
    layout: LayoutExpectations | None = None,
    journal: Journal | None = None,
    profile: str | Profile | None = None,
    variants: Sequence[str] = (),
) -> Report:
    """Inspect ``release`` for ``target`` (inferred from its binaries when None).

    Layout expectations come from ``layout`` or else from ``profile``'s ``[layout]`` table.
    """
    started = time.perf_counter()
    collected = collect(release)
    name = try_parse_release_name(release.name)
    if name is None and collected.contents.package is not None:  # tiles.pkg: its facts are inside
        name = collected.contents.package.release_name()
    resolved = load_target(target) if isinstance(target, str) else (target or default_target(collected, name))
    if layout is None:
        layout = profile_layout(profile, resolved, name, variants) if profile else LayoutExpectations()
    report = inspect_collected(collected, resolved, layout)
    report.stats["profile"] = profile.name if isinstance(profile, Profile) else profile or ""
    if name is not None:
        report.stats["release_name"] = {"product": name.product, "version": name.version,
                                        "prerelease": name.parsed.is_prerelease, "platform": name.platform,
                                        "backend": name.backend}
    report.stats["duration_s"] = round(time.perf_counter() - started, 3)
    if journal is not None:
        journal.write(GenericRecord(kind="footprint", target=resolved.name,
                                    data={"source": "static", "release": str(release), **report.footprint}))
    return report
