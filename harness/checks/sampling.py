"""Sampling under concurrency: seeded requests above temperature 0, sent at the same time, must
get the answers they get one by one. A server whose random state is shared between requests
(one generator re-seeded per request) passes every sequential check and fails here, because
concurrent requests draw from each other's stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.completions import Completion, CompletionClient
from harness.determinism import differences
from harness.profile import Profile, Prompt

SEED_STEP = 101  # further seeds beyond the profile's two, far enough apart to sample differently


@dataclass(frozen=True)
class SeededRequest:
    prompt: Prompt
    seed: int

    @property
    def label(self) -> str:
        return f"{self.prompt.id} seed {self.seed}"


def plan(profile: Profile, width: int = 4) -> list[SeededRequest]:
    """Every prompt with the profile's seeds (and more, up to ``width`` requests per prompt),
    plus the first request twice: equal seeds at once, and different seeds at once."""
    first, second = profile.determinism.seeds
    seeds = [first, second] + [first + SEED_STEP * i for i in range(1, max(0, width - 2) + 1)]
    requests = [SeededRequest(p, s) for p in profile.prompts for s in seeds[:max(2, width)]]
    return requests + requests[:1]


def ask_seeded(client: CompletionClient, profile: Profile, request: SeededRequest) -> Completion:
    spec = profile.determinism
    return client.complete(request.prompt.messages, max_tokens=request.prompt.max_tokens or spec.max_tokens,
                           temperature=spec.seeded_temperature, seed=request.seed)


def at_once(client: CompletionClient, profile: Profile, requests: Sequence[SeededRequest]) -> list[Completion]:
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        futures = [pool.submit(ask_seeded, client, profile, r) for r in requests]
        return [f.result() for f in futures]


def problems(requests: Sequence[SeededRequest], alone: Sequence[Completion],
             together: Sequence[Completion]) -> list[str]:
    return [f"{r.label}: concurrent vs one by one: {'; '.join(found)}"
            for r, a, b in zip(requests, alone, together) if (found := differences(a, b))]
