"""The golden check: this build's answers against the approved ones, and what a difference means."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from harness.completions import Completion
from harness.errors import ProductDefect
from harness.goldens import GoldenVerdict, Judgement, Provenance
from harness.images import current_digest
from harness.target import Target

CHANGED_SINCE_APPROVED_PHRASE = "goldens describe build"


class GoldensChanged(ProductDefect):
    """Another build than the approved one answers differently: review, then approve by re-recording."""


class GoldensDrift(ProductDefect):
    """The build the goldens were recorded from answers differently now: a portability defect."""


def this_build(target: Target, answers: Sequence[Completion]) -> Provenance:
    fingerprints = [a.system_fingerprint for a in answers if a.system_fingerprint]
    return Provenance(
        release=target.release.id,
        release_sha256=target.release.sha256,
        system_fingerprint=fingerprints[0] if fingerprints else None,
        image=target.image,
        image_digest=current_digest(target.image),
    )


def rerecord_command(target: Target, profile_arg: str | None, goldens_dir: Path | None) -> str:
    argv = ["harness", "run", "--release", str(target.spec.release_path)]
    if profile_arg:
        argv += ["--profile", profile_arg]
    argv += ["--image", target.image, "--update-goldens"]
    if goldens_dir is not None:
        argv += ["--goldens-dir", str(goldens_dir)]
    return shlex.join(argv)


def raise_for(verdict: GoldenVerdict, other_build: str) -> str | None:
    """Raise the check's failure; return a non-blocking notice instead when the profile says so."""
    if verdict.ok:
        return None
    if verdict.judgement is Judgement.CHANGED_SINCE_APPROVED:
        if other_build == "report":
            return verdict.message()
        raise GoldensChanged(verdict.message())
    raise GoldensDrift(verdict.message())
