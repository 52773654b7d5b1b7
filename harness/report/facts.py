"""The facts a report states about a run: which release, which images, which host, which harness.

The suite states the release and image facts through ``meta`` records (see
:class:`harness.report.recorder.Reporter`, which writes them in the shape read here); the report
plugin adds the host facts in a ``run`` record when the run starts and the exit status in a
``run_end`` record when it ends.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.release_name import try_parse_release_name

GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ReleaseFacts:
    tarball: str = ""
    version: str = ""
    sha256: str = ""
    profile: str = ""

    @property
    def version_label(self) -> str:
        """The version as the sign-off shows it; a pre-release (canary, nightly, rc) says so."""
        name = try_parse_release_name(self.tarball)
        version = self.version or (name.version if name else "")
        return f"{version} (pre-release)" if name is not None and name.parsed.is_prerelease else version


@dataclass(frozen=True)
class ImageFacts:
    """One image of the run: the report's target, the ``--image`` name it was booted from and the
    provider's digest of that image (for QEMU the image store's build hash, the one
    ``harness images list`` shows; "" when the provider cannot tell)."""

    target: str
    image_id: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return self.image_id or self.target

    def merged(self, other: ImageFacts) -> ImageFacts:
        """These facts with the gaps filled from ``other`` (what an earlier record left out)."""
        return ImageFacts(
            self.target, self.image_id or other.image_id, self.digest or other.digest
        )


@dataclass(frozen=True)
class HostFacts:
    os: str = ""
    python: str = ""
    harness_version: str = ""
    git_revision: str = ""

    @classmethod
    def probe(cls) -> HostFacts:
        return cls(
            os=host_os(),
            python=platform.python_version(),
            harness_version=harness.__version__,
            git_revision=git_revision(Path(harness.__file__).resolve().parent),
        )


@dataclass(frozen=True)
class RunFacts:
    release: ReleaseFacts = ReleaseFacts()
    images: tuple[ImageFacts, ...] = ()
    host: HostFacts = HostFacts()
    run_id: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    exitstatus: int | None = None
    workers: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


def host_os() -> str:
    pretty = ""
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    if sys.platform == "darwin":
        pretty = f"macOS {platform.mac_ver()[0]}"
    kernel = f"{platform.system()} {platform.release()} {platform.machine()}"
    return f"{pretty}, {kernel}" if pretty else kernel


def git_revision(directory: Path) -> str:
    """HEAD of the checkout the harness runs from (``+dirty`` with local edits), else CI's sha."""
    try:
        head = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("GITHUB_SHA", "unknown")
    return f"{head}+dirty" if dirty else head


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _release_from(data: Mapping[str, Any]) -> dict[str, str]:
    release = data.get("release")
    found: dict[str, str] = {}
    if isinstance(release, Mapping):
        found["tarball"] = _text(
            release.get("tarball") or release.get("name") or release.get("path")
        )
        found["version"] = _text(release.get("version"))
        found["sha256"] = _text(release.get("sha256"))
    elif isinstance(release, str):
        found["tarball"] = Path(release).name
    profile = data.get("profile")
    if isinstance(profile, Mapping):
        profile = profile.get("name")
    found["profile"] = _text(profile)
    return {k: v for k, v in found.items() if v}


def _images_from(data: Mapping[str, Any]) -> list[ImageFacts]:
    raw: list[Any] = list(data.get("images") or [])
    if data.get("image"):
        raw.append(data["image"])
    images = []
    for item in raw:
        if isinstance(item, Mapping):
            target = _text(item.get("target") or item.get("name") or item.get("id"))
            images.append(
                ImageFacts(
                    target, _text(item.get("id") or item.get("name")), _text(item.get("digest"))
                )
            )
        else:
            images.append(ImageFacts(_text(item), _text(item)))
    return images


def facts_from_records(records: Iterable[Mapping[str, Any]]) -> RunFacts:
    """Merge every ``meta``/``run``/``run_end`` record; later records fill what earlier ones left out."""
    release: dict[str, str] = {}
    images: dict[str, ImageFacts] = {}
    host = HostFacts()
    run: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for record in records:
        kind, data = record.get("kind"), record.get("data") or {}
        if kind == "meta":
            for key, value in _release_from(data).items():
                release.setdefault(key, value)
            for image in _images_from(data):
                known = images.get(image.target)
                images[image.target] = image if known is None else known.merged(image)
            if data.get("run_id"):
                run.setdefault("run_id", _text(data["run_id"]))
            for key, value in (data.get("extra") or {}).items():
                extra[str(key)] = _text(value)
        elif kind == "target":
            # The target's inputs (harness.target.TargetInputs): the image it boots and
            # the provider's digest of it, taken before the first boot.
            image = ImageFacts(
                _text(record.get("target") or data.get("target")),
                _text(data.get("image")),
                _text(data.get("image_digest")),
            )
            if image.target:
                known = images.get(image.target)
                images[image.target] = image if known is None else known.merged(image)
        elif kind == "run":
            host = HostFacts(
                **{
                    k: _text(data.get(k))
                    for k in ("os", "python", "harness_version", "git_revision")
                }
            )
            run.setdefault("run_id", _text(data.get("run_id")))
            run["started_at"] = data.get("started_at")
            run["workers"] = int(data.get("workers") or 0)
        elif kind == "run_end":
            run["finished_at"] = data.get("finished_at")
            run["exitstatus"] = data.get("exitstatus")
    return RunFacts(
        release=ReleaseFacts(**release),
        images=tuple(images[t] for t in sorted(images)),
        host=host,
        run_id=run.get("run_id", ""),
        started_at=run.get("started_at"),
        finished_at=run.get("finished_at"),
        exitstatus=run.get("exitstatus"),
        workers=run.get("workers", 0),
        extra=extra,
    )
