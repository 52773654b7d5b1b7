"""How much disk an installed release takes, per layer, measured in the guest with ``du``.

The sign-off shows it next to the tarball's own footprint (from static inspection), so a layer
that grows on install (compiled bytecode, unpacked weights) is visible per release. ``du -sk``
is the one spelling GNU and BSD (macOS) agree on.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from harness.guest import Guest
from harness.profile import Profile

DU_TIMEOUT_S = 120.0
REST = "(rest of the install)"


def layer_paths(profile: Profile, context: Mapping[str, str]) -> dict[str, str]:
    """Guest path of each layer the profile names: ``{lib}/<layers_dir>/<layer>``."""
    lib = context.get("lib")
    if not lib or not profile.layout.layers_dir:
        return {}
    base = f"{lib.rstrip('/')}/{profile.layout.layers_dir.strip('/')}"
    return {layer: f"{base}/{layer}" for layer in profile.layout.layers}


def disk_usage(guest: Guest, paths: Sequence[str]) -> dict[str, int]:
    """Bytes on disk under each path that exists (missing ones are left out)."""
    if not paths:
        return {}
    quoted = " ".join(shlex.quote(p) for p in paths)
    # One du per path: a single du counts a file once across all its arguments, so a root would
    # come out without the layers inside it. Missing paths print nothing.
    script = f"for p in {quoted}; do [ -e \"$p\" ] && du -sk \"$p\"; done; true"
    result = guest.run(script, timeout=DU_TIMEOUT_S)
    sizes: dict[str, int] = {}
    for line in result.stdout.splitlines():
        kib, _, path = line.partition("\t")
        if kib.isdigit() and path:
            sizes[path] = int(kib) * 1024
    return sizes


def measure(guest: Guest, profile: Profile, context: Mapping[str, str],
            roots: Sequence[str]) -> dict[str, int]:
    """Bytes per layer, plus everything else under the install's roots as one more entry."""
    layers = layer_paths(profile, context)
    sizes = disk_usage(guest, [*layers.values(), *roots])
    found = {name: sizes[path] for name, path in layers.items() if path in sizes}
    rest = sum(sizes.get(root, 0) for root in roots) - sum(found.values())
    if rest > 0:
        found[REST] = rest
    return found
