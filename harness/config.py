"""Where the harness keeps things on the host, resolved once into a frozen value."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostPaths:
    """Directories on the host; all overridable by environment for CI caches and tests."""

    cache: Path  # built base images, downloaded wheels, built reference releases
    state: Path  # per-host live state: slot locks, running VMs' overlays and logs

    @property
    def images(self) -> Path:
        return self.cache / "images"

    @property
    def slots(self) -> Path:
        return self.state / "slots"

    @property
    def vms(self) -> Path:
        return self.state / "vms"

    @property
    def desk(self) -> Path:
        """Logs and host-key pins of VMs made by ``harness shell`` and ``harness repro``."""
        return self.state / "desk"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HostPaths:
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME", "/root"))
        cache = Path(env.get("HARNESS_CACHE") or Path(env.get("XDG_CACHE_HOME", home / ".cache")) / "portability-harness")
        # One fixed directory per host and user, so that concurrent pytest runs share slot locks.
        state = Path(env.get("HARNESS_STATE") or f"/var/tmp/portability-harness-{os.getuid()}")
        return cls(cache=cache, state=state)
