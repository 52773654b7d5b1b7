"""What the portability checks share: asking for a profile's prompts, and failing with a
message whose first line says what broke."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from harness.completions import Completion, CompletionClient
from harness.profile import Profile, Prompt

MAX_LISTED = 25


def expect_none(problems: Sequence[str], summary: str) -> None:
    """Fail with ``summary`` and the problems, one per line, when there are any. The first line
    names the first problem too, so a one-line view (a table cell, a notification) says where."""
    if not problems:
        return
    shown = list(problems[:MAX_LISTED])
    if len(problems) > MAX_LISTED:
        shown.append(f"... and {len(problems) - MAX_LISTED} more")
    first = problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)"
    raise AssertionError(f"{summary}: {first}\n" + "\n".join(f"  - {p}" for p in shown))


def ask(client: CompletionClient, profile: Profile, prompt: Prompt, *, temperature: float | None = None,
        seed: int | None = None, stream: bool | None = None) -> Completion:
    """One completion for ``prompt`` with the profile's determinism settings as defaults."""
    spec = profile.determinism
    return client.complete(
        prompt.messages,
        max_tokens=prompt.max_tokens or spec.max_tokens,
        temperature=spec.temperature if temperature is None else temperature,
        seed=seed,
        stream=stream,
    )


def ask_all(client: CompletionClient, profile: Profile, **kwargs: object) -> list[tuple[Prompt, Completion]]:
    return [(p, ask(client, profile, p, **kwargs)) for p in profile.prompts]  # type: ignore[arg-type]


def ask_concurrently(client: CompletionClient, profile: Profile, prompts: Sequence[Prompt],
                     **kwargs: object) -> list[Completion]:
    """All prompts at once (one thread each), answers in prompt order."""
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        futures = [pool.submit(ask, client, profile, p, **kwargs) for p in prompts]  # type: ignore[arg-type]
        return [f.result() for f in futures]


def evidence(pairs: Sequence[tuple[str, Completion]]) -> list[dict[str, object]]:
    """Requests and answers, labelled, for a JSON attachment."""
    return [{"label": label, **c.to_json()} for label, c in pairs]
