"""Release tarball names as products really write them, read by one parser.

    <product>-v<version>-<arch>-<os>[-<backend>].tar.gz     a tarball
    <product>-v<version>-<arch>-<os>.pkg                   a macOS installer package
    version = <release>[-<pre-release>][+<build>]      e.g. 0.4.20-canary.1, 1.2.0-rc.1+g3f2a

``harness run``, ``inspect``, ``diff``, ``report`` and a profile's version and platform matching
all read names through :func:`parse_release_name`, so a name one verb accepts, every verb accepts.
The version follows semantic versioning's shape (a pre-release sorts before its release, build
metadata does not order), with the dotted release part of any length so ``2.0`` and ``1.2.0rc1``
(a PEP 440 pre-release glued to the number) still read. The first ``-v<digit>`` after the product
starts the version, so a product name may hold dashes but no segment shaped like ``v2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

from harness.errors import UsageError

# uname -m spellings that mean the same machine.
ARCH_ALIASES = {"aarch64": "arm64", "amd64": "x86_64", "x64": "x86_64"}
ARCHES = ("x86_64", "arm64", "aarch64", "amd64")
OSES = ("linux", "darwin")

_IDENT = r"[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*"
_VERSION = (
    rf"(?P<release>\d+(?:\.\d+)*)(?P<glued>[a-z]+\d*)?"
    rf"(?:-(?P<pre>{_IDENT}))?(?:\+(?P<build>{_IDENT}))?"
)
_NAME_RE = re.compile(
    rf"^(?P<product>[A-Za-z0-9][A-Za-z0-9_.]*(?:-[A-Za-z0-9_.]+)*?)-v(?P<version>{_VERSION})"
    rf"-(?P<arch>{'|'.join(ARCHES)})-(?P<os>{'|'.join(OSES)})(?:-(?P<backend>[a-z0-9]+))?(?:\.tar\.gz|\.pkg)$"
)
_VERSION_RE = re.compile(rf"^v?{_VERSION}$")


class ReleaseError(UsageError):
    """The tarball given with ``--release`` cannot be tested as it is."""


class ReleaseNameError(ReleaseError):
    """A tarball name or a version string the harness cannot read."""


@total_ordering
@dataclass(frozen=True)
class Version:
    """A release version; ordering follows semver precedence (build metadata is ignored)."""

    release: tuple[int, ...]
    pre: tuple[str, ...] = ()  # dot-separated pre-release identifiers ("canary", "1")
    build: str = ""
    text: str = field(default="", compare=False)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)

    def __str__(self) -> str:
        return self.text or ".".join(map(str, self.release)) + (f"-{'.'.join(self.pre)}" if self.pre else "") \
            + (f"+{self.build}" if self.build else "")

    def _key(self) -> tuple[tuple[int, ...], int, tuple[tuple[int, int, str], ...]]:
        padded = self.release + (0,) * (8 - len(self.release))
        # A pre-release sorts before its release; numeric identifiers before alphanumeric ones.
        ids = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in self.pre)
        return padded, (0 if self.pre else 1), ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()


def parse_version(text: str) -> Version:
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise ReleaseNameError(
            f"{text!r} is not a version",
            hint="write versions as 0.4.18, 0.4.20-canary.1 or 1.0.0-rc.1+build.5",
        )
    return _version(match, text.strip().removeprefix("v"))


def _version(match: re.Match[str], text: str) -> Version:
    pre = match["pre"] or ""
    if match["glued"]:  # 1.2.0rc1: the glued part is a pre-release too
        pre = match["glued"] + (f".{pre}" if pre else "")
    return Version(
        release=tuple(int(p) for p in match["release"].split(".")),
        pre=tuple(re.split(r"[.-]", pre)) if pre else (),
        build=match["build"] or "",
        text=text,
    )


@dataclass(frozen=True)
class ReleaseName:
    product: str
    version: str  # exactly as written in the name, e.g. "0.4.20-canary.1"
    arch: str  # normalised: arm64, x86_64
    os: str  # linux | darwin
    backend: str = ""  # a GPU backend after the OS (Tiles 0.4.17-0.4.19: cuda, vulkan)
    parsed: Version = field(default=Version((0,)), compare=False)

    @property
    def platform(self) -> str:
        return f"{self.os}-{self.arch}"

    @property
    def suffix(self) -> str:
        return self.backend


def parse_release_name(filename: str) -> ReleaseName:
    match = _NAME_RE.match(filename)
    if not match:
        raise ReleaseNameError(
            f"cannot read product, version and platform from the tarball name {filename!r}",
            hint="the harness reads names shaped <product>-v<version>-<arch>-<os>[-<backend>].tar.gz "
            "(version like 0.4.18 or 0.4.20-canary.1, arch x86_64|arm64, os linux|darwin), "
            "e.g. tiles-v0.4.20-canary.1-x86_64-linux.tar.gz; if your product names its tarballs "
            "differently, copy the file to a name of that shape",
        )
    version = _version(match, match["version"])
    arch = ARCH_ALIASES.get(match["arch"], match["arch"])
    return ReleaseName(match["product"], match["version"], arch, match["os"], match["backend"] or "", version)


def try_parse_release_name(filename: str) -> ReleaseName | None:
    """For verbs that accept any archive (inspect, diff): the name's facts when it has them."""
    try:
        return parse_release_name(filename)
    except ReleaseNameError:
        return None


_COMPARATOR_RE = re.compile(r"^(>=|<=|==|!=|>|<)\s*(\S+)$")
_COMPARE = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
}


def version_in_range(version: Version, spec: str) -> bool:
    """``spec`` is comparators joined by commas (all must hold), e.g. ``">=0.4.0,<0.4.17"``; an
    empty spec holds for every version. Pre-releases order before their release, as in semver:
    ``0.4.17-canary.1 < 0.4.17``."""
    ok = True
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = _COMPARATOR_RE.match(part)
        if not match:
            raise ReleaseNameError(f"{part!r} is not a comparator",
                                   hint="use >=, <=, >, <, == or != followed by a version, e.g. >=0.4.17")
        ok = ok and _COMPARE[match[1]](version, parse_version(match[2]))
    return ok
