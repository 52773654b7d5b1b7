"""Golden completions: the answers a release gave when someone last looked and approved them.

One JSON file per profile and platform, ``<goldens dir>/<profile>/<platform>.json``, mapping each
prompt id to its text, sha256 and token count. ``--update-goldens`` (re)records the entries a run
produced; otherwise a mismatch fails with a word-level unified diff. Parallel workers recording at
once merge their entries under a file lock.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.completions import Completion
from harness.config import HostPaths
from harness.determinism import describe_text_difference, unified_diff
from harness.errors import UsageError

FORMAT_VERSION = 1


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


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def golden_path(root: Path, profile: str, platform: str) -> Path:
    return root / profile / f"{platform}.json"


def load_goldens(path: Path) -> dict[str, GoldenEntry]:
    if not path.is_file():
        raise GoldenMissing(
            f"no golden file {path}",
            hint="record one from a run you trust: add --update-goldens, review the new file and commit it",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {k: GoldenEntry(**v) for k, v in data["prompts"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"golden file {path} is malformed ({type(exc).__name__}: {exc})",
            hint="re-record it with --update-goldens",
        ) from None


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


def record(path: Path, profile: str, platform: str, release: str, entries: Mapping[str, GoldenEntry],
           settings: Mapping[str, Any]) -> None:
    """Merge ``entries`` into the golden file (other prompts' entries are kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(_lock_path(path)), timeout=60):
        current: dict[str, Any] = {}
        if path.is_file():
            try:
                current = json.loads(path.read_text(encoding="utf-8")).get("prompts", {})
            except ValueError:
                current = {}
        current.update({k: vars(v) for k, v in entries.items()})
        doc = {
            "format": FORMAT_VERSION,
            "profile": profile,
            "platform": platform,
            "recorded_with": release,
            "settings": dict(settings),
            "prompts": dict(sorted(current.items())),
        }
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)


def _lock_path(path: Path) -> Path:
    # Locks live in the host state dir, not beside the goldens, so the source tree stays clean.
    locks = HostPaths.from_env().state / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"golden-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}.lock"
