"""Determinism at temperature 0 (and with a seed above it): the same question, the same answer,
however it is asked."""

from __future__ import annotations

import pytest

from harness.checks.shared import ask, ask_all, ask_concurrently, evidence, expect_none
from harness.completions import CompletionClient
from harness.determinism import all_same, counts_agree, differences, seeds_behave, usage_problems
from harness.suite.deployment import Deployment

pytestmark = [pytest.mark.vm, pytest.mark.portability]


def test_determinism_temperature0(deployment: Deployment, client: CompletionClient, report) -> None:
    """N repeated requests at temperature 0 give the same answer, for every prompt."""
    profile = deployment.target.profile
    problems, shown = [], []
    for prompt in profile.prompts:
        answers = [(f"{prompt.id} #{i + 1}", ask(client, profile, prompt)) for i in range(profile.determinism.repeats)]
        shown += answers
        problems += all_same(answers)
    report.attach_json(evidence(shown), "repeated completions")
    expect_none(problems, f"answers at temperature {profile.determinism.temperature} changed between identical requests")


def test_determinism_restart(deployment: Deployment, client: CompletionClient, report) -> None:
    """The answers after a server restart equal those before it."""
    profile = deployment.target.profile
    before = ask_all(client, profile)
    server = deployment.server()
    server.stop()
    server.start()
    after = ask_all(client, profile)
    report.attach_json(evidence([(f"{p.id} before", c) for p, c in before] + [(f"{p.id} after", c) for p, c in after]),
                       "completions around a restart")
    problems = [f"{p.id}: {'; '.join(found)}" for (p, a), (_, b) in zip(before, after) if (found := differences(a, b))]
    expect_none(problems, "answers changed across a server restart")


def test_stream_matches_nonstream(deployment: Deployment, client: CompletionClient, report) -> None:
    """A streamed answer concatenates to exactly the non-streamed answer."""
    api = deployment.target.profile.api
    if not (api.supports_stream and api.supports_non_stream):
        pytest.skip(f"the {api.flavour} API offers only {'streaming' if api.supports_stream else 'non-streaming'} answers")
    profile = deployment.target.profile
    pairs, problems = [], []
    for prompt in profile.prompts:
        plain = ask(client, profile, prompt, stream=False)
        streamed = ask(client, profile, prompt, stream=True)
        pairs += [(f"{prompt.id} json", plain), (f"{prompt.id} stream", streamed)]
        if found := differences(plain, streamed):
            problems.append(f"{prompt.id}: streamed vs non-streamed: {'; '.join(found)}")
    report.attach_json(evidence(pairs), "streamed and non-streamed completions")
    expect_none(problems, "streamed answers differ from non-streamed ones")


def test_determinism_concurrent(deployment: Deployment, client: CompletionClient, report) -> None:
    """Requests sent at the same time get the answers they get one after another."""
    profile = deployment.target.profile
    prompts = list(profile.prompts) * 2 if len(profile.prompts) < 2 else list(profile.prompts)
    sequential = [ask(client, profile, p) for p in prompts]
    concurrent = ask_concurrently(client, profile, prompts)
    report.attach_json(evidence([(f"{p.id} sequential", c) for p, c in zip(prompts, sequential)]
                                + [(f"{p.id} concurrent", c) for p, c in zip(prompts, concurrent)]),
                       "sequential and concurrent completions")
    problems = [f"{p.id}: concurrent vs sequential: {'; '.join(found)}"
                for p, a, b in zip(prompts, sequential, concurrent) if (found := differences(a, b))]
    expect_none(problems, "answers to concurrent requests differ from sequential ones")


def test_determinism_seed(deployment: Deployment, client: CompletionClient, report) -> None:
    """Sampling above temperature 0: the same seed repeats its answer, another seed changes it."""
    profile = deployment.target.profile
    if not profile.api.supports_seed:
        pytest.skip(f"the profile says the {profile.api.flavour} API takes no seed")
    spec = profile.determinism
    first_seed, other_seed = spec.seeds
    problems, changed, pairs = [], [], []
    for prompt in profile.prompts:
        a = ask(client, profile, prompt, temperature=spec.seeded_temperature, seed=first_seed)
        b = ask(client, profile, prompt, temperature=spec.seeded_temperature, seed=first_seed)
        c = ask(client, profile, prompt, temperature=spec.seeded_temperature, seed=other_seed)
        pairs += [(f"{prompt.id} seed {first_seed}", a), (f"{prompt.id} seed {first_seed} again", b),
                  (f"{prompt.id} seed {other_seed}", c)]
        found = seeds_behave(a, b, c)
        problems += [f"{prompt.id}: {p}" for p in found if p.startswith("same seed")]
        changed.append(not any(p.startswith("seeds ") for p in found))
    report.attach_json(evidence(pairs), "seeded completions")
    if not any(changed):
        problems.append(f"seeds {first_seed} and {other_seed} gave identical answers for every prompt at "
                        f"temperature {spec.seeded_temperature}: the seed is ignored or sampling is off")
    expect_none(problems, "seeded sampling is not reproducible")


def test_usage_consistent(deployment: Deployment, client: CompletionClient, report) -> None:
    """Token counts add up, respect max_tokens, and agree between streamed and plain answers."""
    profile = deployment.target.profile
    api = profile.api
    problems, pairs = [], []
    for prompt in profile.prompts:
        answers = []
        if api.supports_non_stream:
            answers.append((f"{prompt.id} json", ask(client, profile, prompt, stream=False)))
        if api.supports_stream:
            answers.append((f"{prompt.id} stream", ask(client, profile, prompt, stream=True)))
        pairs += answers
        for label, answer in answers:
            problems += usage_problems(answer, label)
        if len(answers) == 2:
            problems += counts_agree(answers[0][1], answers[1][1], answers[0][0], answers[1][0])
    report.attach_json(evidence(pairs), "completions with usage")
    expect_none(problems, "token accounting is inconsistent")
