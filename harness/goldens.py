"""Golden completions: the answers a release gave when someone last looked and approved them.

One JSON file per profile and platform, ``<goldens dir>/<profile>/<platform>.json``, mapping each
prompt id to its text, sha256 and token count, and saying which build it was recorded from (the
tarball's sha256, the server's ``system_fingerprint``, the image and its digest, the harness
version). That provenance decides what a mismatch means: the same build answering differently is
a portability or determinism defect; another build answering differently is a change since the
approved build, reported with its diff and the command that approves it by re-recording.
``--update-goldens`` (re)records the entries a run produced. Parallel workers recording at once
merge their entries under a file lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness import __version__
from harness.completions import Completion
from harness.config import HostPaths
from harness.determinism import describe_text_difference, unified_diff
from harness.errors import UsageError

FORMAT_VERSION = 2
SHORT_BUILD = 12


class GoldenMissing(UsageError):
    """No golden recorded yet for this profile, platform or prompt: a set-up gap, not a defect."""


@dataclass(frozen=True)
class GoldenEntry:
    text: str
    sha256: str
    completion_tokens: int | None

    @classmethod
    def of(cls, completion: Completion) -> GoldenEntry:
        return cls(completion.text, text_sha256(completion.text), completion.completion_tokens)


@dataclass(frozen=True)
class Provenance:
    """Which build answered: enough to tell "this build changed" from "another build"."""

    release: str
    release_sha256: str
    system_fingerprint: str | None = None
    image: str = ""
    image_digest: str = ""
    harness_version: str = __version__
    recorded_at: str = ""

    @property
    def build(self) -> str:
        return self.release_sha256[:SHORT_BUILD]

    def same_build(self, other: Provenance) -> bool:
        return self.release_sha256 == other.release_sha256

    def describe(self) -> str:
        parts = [self.release]
        if self.recorded_at:
            parts.append(f"recorded {self.recorded_at}")
        if self.image:
            parts.append(f"on {self.image}" + (f" ({self.image_digest[:SHORT_BUILD]})" if self.image_digest else ""))
        if self.system_fingerprint:
            parts.append(f"model {self.system_fingerprint}")
        return ", ".join(parts)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Provenance:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class GoldenFile:
    path: Path
    entries: Mapping[str, GoldenEntry]
    provenance: Provenance | None  # None: recorded before golden files said which build


class Judgement(Enum):
    MATCH = "match"
    DRIFT = "drift"  # the recorded build (or an unknown one) answers differently
    CHANGED_SINCE_APPROVED = "changed since approved"  # another build than the recorded one


@dataclass(frozen=True)
class GoldenVerdict:
    judgement: Judgement
    headline: str
    problems: tuple[str, ...]
    changed: int
    total: int
    rerecord: str

    @property
    def ok(self) -> bool:
        return self.judgement is Judgement.MATCH

    def message(self) -> str:
        """The check's failure text: the headline first, then each difference."""
        lines = [self.headline, *(f"  - {p}" for p in self.problems)]
        if self.rerecord:
            lines.append(f"re-record after review: {self.rerecord}")
        return "\n".join(lines)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def golden_path(root: Path, profile: str, platform: str) -> Path:
    return root / profile / f"{platform}.json"


def load_goldens(path: Path) -> GoldenFile:
    if not path.is_file():
        raise GoldenMissing(
            f"no golden file {path}",
            hint="record one from a run you trust: add --update-goldens, review the new file and commit it",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = {k: GoldenEntry(**v) for k, v in data["prompts"].items()}
        recorded = data.get("recorded_from")
        provenance = Provenance.from_json(recorded) if isinstance(recorded, Mapping) else None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"golden file {path} is malformed ({type(exc).__name__}: {exc})",
            hint="re-record it with --update-goldens",
        ) from None
    return GoldenFile(path, entries, provenance)


def compare(goldens: Mapping[str, GoldenEntry], prompt_id: str, completion: Completion, path: Path) -> list[str]:
    """Problems with one answer against its golden (empty when it matches)."""
    entry = goldens.get(prompt_id)
    if entry is None:
        raise GoldenMissing(
            f"{path} has no entry for prompt {prompt_id!r}",
            hint="the profile gained a prompt: record it with --update-goldens",
        )
    problems = []
    if completion.text != entry.text:
        problems.append(
            f"prompt {prompt_id!r}: {describe_text_difference(entry.text, completion.text)}\n"
            + unified_diff(entry.text, completion.text, f"golden ({path.name})", "this run")
        )
    tokens = completion.completion_tokens
    if entry.completion_tokens is not None and tokens is not None and tokens != entry.completion_tokens:
        problems.append(f"prompt {prompt_id!r}: {tokens} tokens, golden has {entry.completion_tokens}")
    return problems


def judge(golden: GoldenFile, answers: Sequence[tuple[str, Completion]], current: Provenance,
          rerecord: str) -> GoldenVerdict:
    """Compare every answer and say what a difference means for this build."""
    per_prompt = {prompt_id: compare(golden.entries, prompt_id, answer, golden.path) for prompt_id, answer in answers}
    problems = tuple(p for found in per_prompt.values() for p in found)
    changed = sum(1 for found in per_prompt.values() if found)
    total = len(per_prompt)
    recorded = golden.provenance
    if not problems:
        return GoldenVerdict(Judgement.MATCH, f"all {total} answers match the goldens in {golden.path}",
                             (), 0, total, "")
    if recorded is not None and not recorded.same_build(current):
        headline = (f"goldens describe build {recorded.build} ({recorded.describe()}); this is build "
                    f"{current.build} ({current.release}): {changed} of {total} answers changed since that build")
        return GoldenVerdict(Judgement.CHANGED_SINCE_APPROVED, headline, problems, changed, total, rerecord)
    which = (f"the same build {current.build} the goldens were recorded from" if recorded is not None
             else "a build the goldens do not name (recorded before golden files said which build)")
    headline = f"answers differ from the goldens in {golden.path} ({changed} of {total}), on {which}"
    return GoldenVerdict(Judgement.DRIFT, headline, problems, changed, total,
                         rerecord if recorded is None else "")


def record(path: Path, profile: str, platform: str, provenance: Provenance, entries: Mapping[str, GoldenEntry],
           settings: Mapping[str, Any]) -> None:
    """Merge ``entries`` into the golden file; a file recorded from another build starts afresh."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = Provenance(**{**asdict(provenance), "recorded_at": provenance.recorded_at or utc_now()})
    with FileLock(str(_lock_path(path)), timeout=60):
        current: dict[str, Any] = {}
        if path.is_file():
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
                recorded = previous.get("recorded_from") or {}
                # Entries of another build would describe answers this build never gave.
                if recorded.get("release_sha256") == provenance.release_sha256:
                    current = previous.get("prompts", {})
            except (ValueError, AttributeError):
                current = {}
        current.update({k: vars(v) for k, v in entries.items()})
        doc = {
            "format": FORMAT_VERSION,
            "profile": profile,
            "platform": platform,
            "recorded_from": asdict(stamped),
            "settings": dict(settings),
            "prompts": dict(sorted(current.items())),
        }
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _lock_path(path: Path) -> Path:
    # Locks live in the host state dir, not beside the goldens, so the source tree stays clean.
    locks = HostPaths.from_env().state / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"golden-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}.lock"
