"""Which provider makes which VM: providers by name, and the provider that owns an image.

Providers are imported lazily, so a host without tart never imports tart's module. A provider
class is built with ``from_env(paths)`` when it has one, else ``cls(paths)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

from harness.config import HostPaths
from harness.errors import HarnessError, UsageError
from harness.vm.provider import Provider


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    target: str  # "module:Class"
    summary: str


PROVIDERS: tuple[ProviderEntry, ...] = (
    ProviderEntry("qemu", "harness.vm.qemu.provider:QemuProvider", "Linux guests under QEMU"),
    ProviderEntry("tart", "harness.vm.tart.provider:TartProvider", "macOS guests through tart"),
    ProviderEntry("orchard", "harness.vm.orchard.provider:OrchardProvider", "macOS guests from an Orchard fleet (HARNESS_ORCHARD_URL)"),
)


def provider_names() -> list[str]:
    return [entry.name for entry in PROVIDERS]


def get_provider(name: str, paths: HostPaths | None = None) -> Provider:
    """The provider called ``name``; UsageError listing the known ones otherwise."""
    entry = next((e for e in PROVIDERS if e.name == name), None)
    if entry is None:
        raise UsageError(
            f"unknown VM provider '{name}'",
            hint=f"known providers: {', '.join(provider_names())}",
        )
    module_name, _, class_name = entry.target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"VM provider '{name}' is not available in this installation: {exc}",
            hint="reinstall the harness (`pip install -e .`)",
        ) from None
    paths = paths or HostPaths.from_env()
    factory = getattr(cls, "from_env", None)
    provider: Provider = factory(paths) if factory is not None else cls(paths)
    return provider


def available_providers(paths: HostPaths | None = None) -> list[Provider]:
    """Every provider that can be built on this host (for ``gc``, which must look everywhere)."""
    found: list[Provider] = []
    for name in provider_names():
        try:
            found.append(get_provider(name, paths))
        except HarnessError:
            continue
    return found


def _images_of(provider: Provider) -> list[str]:
    try:
        return list(provider.images())
    except (HarnessError, OSError):
        return []  # e.g. tart on a Linux host: it offers nothing here


def provider_for_image(image: str, paths: HostPaths | None = None,
                       providers: Iterable[Provider] | None = None) -> Provider:
    """The provider that can clone ``image``; UsageError listing every known image otherwise."""
    candidates = list(providers) if providers is not None else available_providers(paths)
    known: dict[str, list[str]] = {}
    for provider in candidates:
        images = _images_of(provider)
        if image in images:
            return provider
        known[provider.name] = images
    listing = "; ".join(f"{name}: {', '.join(imgs) or '(none)'}" for name, imgs in known.items())
    raise UsageError(
        f"unknown image '{image}'",
        hint=f"known images -- {listing or 'no provider available'}. "
        "Build a Linux image with `harness images build <name>`, list them with "
        "`harness images list`",
    )
