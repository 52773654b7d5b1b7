"""What a package says about itself: the product's Distribution and each component's PackageInfo.

Both are XML from an untrusted file, so they are parsed with defusedxml (no entities, no external
references). Only the facts the macOS Installer acts on are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from harness.errors import UsageError


@dataclass(frozen=True)
class PkgRef:
    id: str
    version: str = ""
    location: str = ""  # the element's text, e.g. "#tiles-unsigned.pkg" (a member of this archive)

    @property
    def component(self) -> str:
        """The component directory inside this archive that the reference names ('' if none)."""
        return self.location[1:] if self.location.startswith("#") else ""


@dataclass(frozen=True)
class Choice:
    id: str
    title: str
    refs: tuple[str, ...]


@dataclass(frozen=True)
class Distribution:
    title: str = ""
    host_architectures: tuple[str, ...] = ()  # empty: the attribute is absent
    allowed_os: tuple[tuple[str, str], ...] = ()  # (min, before) pairs from <allowed-os-versions>
    script_checks: tuple[str, ...] = ()  # installation-check / volume-check scripts the Installer runs
    customize: str = ""
    require_scripts: bool = False
    choices: tuple[Choice, ...] = ()
    pkg_refs: tuple[PkgRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "host_architectures": list(self.host_architectures),
                "allowed_os": [{"min": lo, "before": hi} for lo, hi in self.allowed_os],
                "script_checks": list(self.script_checks), "customize": self.customize,
                "choices": [{"id": c.id, "title": c.title, "pkg_refs": list(c.refs)} for c in self.choices],
                "pkg_refs": [{"id": r.id, "version": r.version, "location": r.location} for r in self.pkg_refs]}


@dataclass(frozen=True)
class PackageInfo:
    identifier: str = ""
    version: str = ""
    install_location: str = "/"
    auth: str = ""
    bundles: tuple[str, ...] = ()  # bundle paths inside the payload
    relocatable: tuple[str, ...] = ()  # bundle ids the Installer may install over a copy found elsewhere
    scripts: dict[str, str] = field(default_factory=dict)  # phase -> file in the Scripts archive


def parse_xml(data: bytes, what: str) -> Element:
    try:
        root: Element = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise UsageError(f"{what} is not well-formed XML ({type(exc).__name__}: {exc})",
                         hint="rebuild the package with productbuild/pkgbuild") from exc
    return root


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def parse_distribution(data: bytes, what: str = "Distribution") -> Distribution:
    root = parse_xml(data, what)
    options = root.find("options")
    attrs = options.attrib if options is not None else {}
    checks = tuple(f"{el.tag}: {el.get('script', '')}" for el in root.iter()
                   if el.tag in ("installation-check", "volume-check") and el.get("script"))
    allowed = tuple((os.get("min", ""), os.get("before", "")) for os in root.iter("os-version"))
    choices = tuple(Choice(c.get("id", ""), c.get("title", ""), tuple(r.get("id", "") for r in c.iter("pkg-ref")))
                    for c in root.iter("choice"))
    refs = tuple(PkgRef(r.get("id", ""), r.get("version", ""), (r.text or "").strip())
                 for r in root.iter("pkg-ref") if (r.text or "").strip())
    title = root.find("title")
    return Distribution(title=(title.text or "").strip() if title is not None else "",
                        host_architectures=_split(attrs.get("hostArchitectures")), allowed_os=allowed,
                        script_checks=checks, customize=attrs.get("customize", ""),
                        require_scripts=attrs.get("require-scripts", "") == "true", choices=choices, pkg_refs=refs)


def parse_package_info(data: bytes, what: str = "PackageInfo") -> PackageInfo:
    root = parse_xml(data, what)
    scripts_el = root.find("scripts")
    scripts = {child.tag: child.get("file", "").removeprefix("./") for child in scripts_el} if scripts_el is not None else {}
    relocate = root.find("relocate")
    relocatable = tuple(b.get("id", "") for b in relocate.iter("bundle")) if relocate is not None else ()
    return PackageInfo(identifier=root.get("identifier", ""), version=root.get("version", ""),
                       install_location=root.get("install-location", "/") or "/", auth=root.get("auth", ""),
                       bundles=tuple(b.get("path", "") for b in root.findall("bundle")),
                       relocatable=relocatable, scripts=scripts)
