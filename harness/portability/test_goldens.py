"""The answers match the approved golden answers for this profile and platform."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from harness.checks.goldens import raise_for, rerecord_command, this_build
from harness.checks.shared import ask_all, evidence
from harness.completions import CompletionClient
from harness.goldens import GoldenEntry, golden_path, judge, load_goldens, record
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
    current = this_build(target, [c for _, c in answers])
    report.attach_json(asdict(current), "this build")
    if pytestconfig.getoption("update_goldens"):
        record(path, profile.name, target.platform.platform, current,
               {p.id: GoldenEntry.of(c) for p, c in answers},
               {"temperature": profile.determinism.temperature, "max_tokens": profile.determinism.max_tokens})
        pytest.skip(f"recorded {len(answers)} golden answers in {path}: review and commit them")
    given_dir = pytestconfig.getoption("goldens_dir")
    verdict = judge(load_goldens(path), [(p.id, c) for p, c in answers], current,
                    rerecord_command(target, pytestconfig.getoption("profile"), Path(given_dir) if given_dir else None))
    if verdict.problems:
        report.attach_text("\n\n".join(verdict.problems), "golden diff", suffix=".diff")
    notice = raise_for(verdict, profile.determinism.goldens_other_build)
    if notice is not None:
        pytest.xfail(f"changed since approved (not blocking by profile): {notice}")
