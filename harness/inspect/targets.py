"""Target systems a release must run on, each described by a JSON file in ``targets/``.

A Linux target lists what its clean base image provides (sonames with their symbol versions,
interpreters, commands); that list is generated from the image itself by
``python -m harness.inspect.target_gen``. A macOS target names its version and architecture;
system dylibs under ``/usr/lib`` and ``/System`` are accepted by rule because macOS keeps them in
the dyld shared cache rather than on disk.

A target is a description of a system, not a VM image: a Linux target names the image it was read
from (``image``, the ``--image`` name) and that image's build (``image_build``), which is older
than the image store's current build whenever the recipe changed since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import UsageError

TARGETS_DIR = Path(__file__).with_name("targets")


@dataclass(frozen=True)
class Target:
    name: str
    os: Literal["linux", "macos"]
    arch: str  # x86_64 | arm64
    source: str = ""  # where the lists came from
    glibc: str = ""  # linux: the base system's glibc, e.g. "2.36"
    macos_version: str = ""  # macos: the OS version, e.g. "14.0"
    sonames: frozenset[str] = frozenset()
    symbol_versions: dict[str, frozenset[str]] = field(default_factory=dict)
    library_dirs: tuple[str, ...] = ()
    system_prefixes: tuple[str, ...] = ()  # macos: install names accepted by rule
    interpreters: frozenset[str] = frozenset()  # absolute paths usable in a shebang
    commands: frozenset[str] = frozenset()  # names found on the default PATH (for env shebangs)
    stub_interpreters: dict[str, str] = field(default_factory=dict)  # path -> why it is unusable
    image: str = ""  # the --image name of the image the lists were read from, e.g. linux-debian12
    image_build: str = ""  # that image's digest when the lists were read

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(
            name=data["name"],
            os=data["os"],
            arch=data["arch"],
            source=data.get("source", ""),
            glibc=data.get("glibc", ""),
            macos_version=data.get("macos_version", ""),
            sonames=frozenset(data.get("sonames", ())),
            symbol_versions={k: frozenset(v) for k, v in data.get("symbol_versions", {}).items()},
            library_dirs=tuple(data.get("library_dirs", ())),
            system_prefixes=tuple(data.get("system_prefixes", ())),
            interpreters=frozenset(data.get("interpreters", ())),
            commands=frozenset(data.get("commands", ())),
            stub_interpreters=dict(data.get("stub_interpreters", {})),
            image=data.get("image", ""),
            image_build=data.get("image_build", ""),
        )

    def is_system_install_name(self, name: str) -> bool:
        return any(name.startswith(prefix) for prefix in self.system_prefixes)


def known_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.json"))


def load_target(name_or_path: str) -> Target:
    """A built-in target by name (``debian-12``) or a target JSON file by path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = TARGETS_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise UsageError(
            f"unknown inspection target {name_or_path!r}",
            hint=f"use one of {', '.join(known_targets())} or the path of a target JSON file",
        )
    try:
        return Target.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError) as exc:
        raise UsageError(
            f"target file {path} is malformed: {exc}",
            hint="regenerate it with `python -m harness.inspect.target_gen`",
        ) from exc


def version_tuple(text: str) -> tuple[int, ...]:
    """'2.36' -> (2, 36); 'GLIBC_2.3.4' -> (2, 3, 4); unparsable parts count as 0."""
    tail = text.rsplit("_", 1)[-1]
    return tuple(int(p) if p.isdigit() else 0 for p in tail.split("."))
