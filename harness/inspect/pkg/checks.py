"""What a release manager must see about an installer package before it ships.

Each rule is named ``pkg.<defect>``: what makes the macOS Installer refuse, prompt (Rosetta) or
behave differently on the target, references the archive cannot satisfy, scripts that will not
run, privileged changes the scripts make as root, and the signature and notarization facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.inspect.archive import ReleaseContents
from harness.inspect.findings import Finding
from harness.inspect.pkg.reader import PackageFacts, PkgScript
from harness.inspect.targets import Target, version_tuple


@dataclass(frozen=True)
class PrivilegeRule:
    what: str
    pattern: re.Pattern[str]


# Changes a root script makes outside the product's own files; each is listed, never buried.
PRIVILEGE_RULES: tuple[PrivilegeRule, ...] = (
    PrivilegeRule("sudoers rule", re.compile(r"/(?:private/)?etc/sudoers(?:\.d)?\b|visudo")),
    PrivilegeRule("LaunchDaemon", re.compile(r"/Library/LaunchDaemons\b|launchctl\s+(?:load|bootstrap)\s+system")),
    PrivilegeRule("LaunchAgent", re.compile(r"/Library/LaunchAgents\b")),
    PrivilegeRule("kernel or system extension", re.compile(r"\bkextload\b|/Library/Extensions\b|systemextensionsctl|kmutil")),
    PrivilegeRule("permissions on a system path",
                  re.compile(r"\bch(?:mod|own|grp)\b[^\n]*\s/(?:usr/(?:bin|sbin|lib)|bin|sbin|etc|private|System|Library)(?:/|\s|$)")),
    PrivilegeRule("system power or security setting", re.compile(r"\b(?:pmset|spctl|csrutil|defaults\s+write\s+/Library)\b")),
)
PAYLOAD_PRIVILEGED = (("Library/LaunchDaemons/", "LaunchDaemon"), ("Library/LaunchAgents/", "LaunchAgent"),
                      ("Library/Extensions/", "kernel extension"), ("private/etc/sudoers.d/", "sudoers rule"),
                      ("etc/sudoers.d/", "sudoers rule"))


def privileged_changes(package: PackageFacts, contents: ReleaseContents) -> list[Finding]:
    findings = []
    for script in package.scripts:
        where = _script_path(script)
        for number, line in enumerate(script.text.splitlines(), 1):
            code = line.split("#", 1)[0] if not line.lstrip().startswith("#!") else ""
            for rule in PRIVILEGE_RULES:
                if rule.pattern.search(code):
                    findings.append(Finding("pkg.privileged_change", "warning", f"{where}:{number}",
                                            f"{rule.what}, made as root: {line.strip()[:120]}",
                                            "confirm this change is intended, documented, and undone by the uninstaller"))
    for entry in contents.entries:
        for prefix, what in PAYLOAD_PRIVILEGED:
            if entry.kind == "file" and entry.path.startswith(prefix):
                findings.append(Finding("pkg.privileged_change", "warning", entry.path,
                                        f"{what} installed by the payload (owner {entry.owner or 'unknown'})",
                                        "confirm this change is intended, documented, and undone by the uninstaller"))
    return findings


def _script_path(script: PkgScript) -> str:
    return f"{script.component}/Scripts/{script.name}" if script.component else f"Scripts/{script.name}"


def _distribution_findings(package: PackageFacts, target: Target) -> list[Finding]:
    dist = package.distribution
    if dist is None:
        return []
    findings = []
    arches = dist.host_architectures
    if target.arch == "arm64" and not arches:
        findings.append(Finding("pkg.rosetta_prompt", "error", "Distribution",
                                "no hostArchitectures in <options>: on Apple Silicon the Installer asks to install "
                                "Rosetta before it installs anything", 'declare <options hostArchitectures="arm64,x86_64"/>'))
    elif arches and not any(a == target.arch or (target.arch == "arm64" and a == "arm64e") for a in arches):
        findings.append(Finding("pkg.host_architecture", "error", "Distribution",
                                f"hostArchitectures={','.join(arches)} excludes {target.arch}: the Installer refuses "
                                f"or runs under Rosetta on {target.name}", f"add {target.arch} to hostArchitectures"))
    for low, before in dist.allowed_os:
        version = target.macos_version
        if version and low and version_tuple(low) > version_tuple(version):
            findings.append(Finding("pkg.os_version_refused", "error", "Distribution",
                                    f"<os-version min=\"{low}\">: the Installer refuses macOS {version} ({target.name})",
                                    f"lower the minimum to {version} or drop {target.name} from the profile"))
        if version and before and version_tuple(before) <= version_tuple(version):
            findings.append(Finding("pkg.os_version_refused", "error", "Distribution",
                                    f"<os-version before=\"{before}\">: the Installer refuses macOS {version} ({target.name})",
                                    "raise or remove the upper bound"))
    for check in dist.script_checks:
        findings.append(Finding("pkg.script_requirement", "warning", "Distribution",
                                f"the Installer runs {check} before installing; its verdict is JavaScript this "
                                "static reading cannot evaluate", "install it in a macOS guest to see the verdict"))
    ref_ids = {ref.id for ref in dist.pkg_refs}
    for choice in dist.choices:
        for ref_id in choice.refs:
            if ref_id not in ref_ids:
                findings.append(Finding("pkg.unknown_pkg_ref", "error", "Distribution",
                                        f"choice {choice.id!r} names pkg-ref {ref_id!r}, which no pkg-ref locates",
                                        "add the <pkg-ref id=...>#component.pkg</pkg-ref> or drop it from the choice"))
    return findings


def _reference_findings(package: PackageFacts) -> list[Finding]:
    if package.distribution is None:
        return []
    components = {c.name: c for c in package.components}
    findings = []
    for ref in package.distribution.pkg_refs:
        if not ref.component:
            continue
        component = components.get(ref.component)
        if component is None:
            findings.append(Finding("pkg.missing_component", "error", f"Distribution: {ref.location}",
                                    f"pkg-ref {ref.id!r} names component {ref.component!r}, which the archive does not "
                                    f"hold (it holds {', '.join(sorted(components)) or 'none'})",
                                    "pass the component's directory to productbuild --package-path, or fix the name"))
        elif component.info.identifier != ref.id:
            findings.append(Finding("pkg.identifier_mismatch", "error", f"{ref.component}/PackageInfo",
                                    f"pkg-ref id {ref.id!r} but the component's identifier is {component.info.identifier!r}",
                                    "build the component with pkgbuild --identifier matching the Distribution"))
        elif ref.version and component.info.version and ref.version != component.info.version:
            findings.append(Finding("pkg.version_mismatch", "warning", f"{ref.component}/PackageInfo",
                                    f"pkg-ref version {ref.version} but the component is version {component.info.version}",
                                    "regenerate the Distribution after building the component"))
    return findings


def _component_findings(package: PackageFacts) -> list[Finding]:
    findings = []
    for component in package.components:
        for bundle in component.info.relocatable:
            findings.append(Finding("pkg.relocatable_bundle", "warning", component.label("PackageInfo"),
                                    f"bundle {bundle} is relocatable: the Installer updates a copy found elsewhere on "
                                    "disk instead of installing to the install-location",
                                    "set BundleIsRelocatable=false in the component plist (pkgbuild --component-plist)"))
        shipped = {s.name for s in package.scripts if s.component == component.name}
        for phase, name in component.info.scripts.items():
            if name not in shipped:
                findings.append(Finding("pkg.script_missing", "error", component.label("PackageInfo"),
                                        f"{phase} names {name}, which the Scripts archive does not hold",
                                        "pass the scripts folder to pkgbuild --scripts"))
    for script in package.scripts:
        if not script.executable and script.name in {"preinstall", "postinstall"}:
            findings.append(Finding("pkg.script_not_executable", "error", _script_path(script),
                                    f"mode {script.mode:o}: the Installer cannot run it and the install fails",
                                    f"chmod 755 {script.name} before pkgbuild"))
    return findings


def _signature_findings(package: PackageFacts) -> list[Finding]:
    sig = package.signature
    if not sig.signed:
        return [Finding("pkg.unsigned", "warning", "(package)",
                        "not signed: Gatekeeper blocks a downloaded unsigned package",
                        "sign it with productsign --sign 'Developer ID Installer: ...', then notarize and staple")]
    chain = " <- ".join(sig.chain) or "no certificates in the TOC"
    findings = [Finding("pkg.signed", "info", "(package)", f"signed ({sig.style}): {chain}")]
    if not sig.stapled:
        findings.append(Finding("pkg.not_stapled", "warning", "(package)",
                                "no stapled notarization ticket: an offline Mac cannot confirm notarization",
                                "xcrun stapler staple the package after notarytool accepts it"))
    return findings


def check_package(package: PackageFacts, contents: ReleaseContents, target: Target) -> list[Finding]:
    return [*_distribution_findings(package, target), *_reference_findings(package), *_component_findings(package),
            *privileged_changes(package, contents), *_signature_findings(package)]


def package_facts(package: PackageFacts) -> dict[str, object]:
    """The package's facts for the report (JSON and the rendered Package section)."""
    sig = package.signature
    return {
        "kind": package.kind,
        "distribution": package.distribution.to_dict() if package.distribution else None,
        "components": [{"name": c.name, "identifier": c.info.identifier, "version": c.info.version,
                        "install_location": c.info.install_location, "relocatable": list(c.info.relocatable),
                        "scripts": c.info.scripts, "payload": c.has_payload} for c in package.components],
        "scripts": [{"path": _script_path(s), "mode": f"{s.mode:o}", "executable": s.executable}
                    for s in package.scripts],
        "signature": {"signed": sig.signed, "style": sig.style, "chain": list(sig.chain), "stapled": sig.stapled},
    }
