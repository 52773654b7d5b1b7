"""The answers match the approved golden answers for this profile and platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.completions import CompletionClient
from harness.goldens import GoldenEntry, compare, golden_path, load_goldens, record
from harness.suite.checks import ask_all, evidence, expect_none
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_goldens_match(deployment: Deployment, client: CompletionClient, goldens_dir: Path,
                       pytestconfig: pytest.Config, report) -> None:
    """Every prompt's temperature-0 answer equals its golden (record them with --update-goldens)."""
    target = deployment.target
    profile = target.profile
    path = golden_path(goldens_dir, profile.name, target.platform.platform)
    answers = ask_all(client, profile)
    for prompt, answer in answers:
        report.digest(target.name, prompt.id, text=answer.text)
    report.attach_json(evidence([(p.id, c) for p, c in answers]), "golden prompts' completions")
    if pytestconfig.getoption("update_goldens"):
        record(path, profile.name, target.platform.platform, target.release.id,
               {p.id: GoldenEntry.of(c) for p, c in answers},
               {"temperature": profile.determinism.temperature, "max_tokens": profile.determinism.max_tokens})
        pytest.skip(f"recorded {len(answers)} golden answers in {path}: review and commit them")
    goldens = load_goldens(path)
    problems = [p for prompt, answer in answers for p in compare(goldens, prompt.id, answer, path)]
    if problems:
        report.attach_text("\n\n".join(problems), "golden diff", suffix=".diff")
    expect_none(problems, f"answers differ from the goldens in {path}")
