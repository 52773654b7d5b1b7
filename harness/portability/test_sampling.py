"""Seeded sampling under concurrency: the answers of requests sent at once equal those sent one by one."""

from __future__ import annotations

import pytest

from harness.checks import sampling
from harness.checks.shared import evidence, expect_none
from harness.completions import CompletionClient
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_sampling_concurrent(deployment: Deployment, client: CompletionClient, report) -> None:
    """At the profile's sampling temperature, seeded requests sent together (same seeds and
    different seeds) get the answers they get one by one."""
    profile = deployment.target.profile
    if not profile.api.supports_seed:
        pytest.skip(f"the profile says the {profile.api.flavour} API takes no seed")
    requests = sampling.plan(profile)
    alone = [sampling.ask_seeded(client, profile, r) for r in requests]
    together = sampling.at_once(client, profile, requests)
    report.attach_json(evidence([(f"{r.label} one by one", c) for r, c in zip(requests, alone)]
                                + [(f"{r.label} concurrent", c) for r, c in zip(requests, together)]),
                       "seeded completions, one by one and concurrent")
    expect_none(sampling.problems(requests, alone, together),
                f"seeded answers at temperature {profile.determinism.seeded_temperature} change when requests "
                "run concurrently (shared sampling state?)")
