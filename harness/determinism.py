"""What "deterministic" means for this harness, in one place.

Two completions are *the same answer* when their text, their finish reason and the server's own
count of generated tokens agree. Each rule below returns the list of problems it found (empty
means the rule holds), phrased so that the first line of a failing check says what differed.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from harness.completions import Completion

SNIPPET = 60


def differences(a: Completion, b: Completion) -> list[str]:
    """How answer ``b`` differs from answer ``a`` (empty when they are the same answer)."""
    out: list[str] = []
    if a.text != b.text:
        out.append(describe_text_difference(a.text, b.text))
    if a.finish_reason != b.finish_reason and None not in (a.finish_reason, b.finish_reason):
        out.append(f"finish_reason {a.finish_reason!r} vs {b.finish_reason!r}")
    ta, tb = a.completion_tokens, b.completion_tokens
    if ta is not None and tb is not None and ta != tb:
        out.append(f"completion token count {ta} vs {tb}")
    return out


def describe_text_difference(a: str, b: str) -> str:
    """Where two texts part ways, with a little context, readable in one line."""
    index = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, index - 20)
    return (
        f"text differs from character {index}: "
        f"{a[start:index + SNIPPET]!r} vs {b[start:index + SNIPPET]!r} "
        f"(lengths {len(a)} and {len(b)})"
    )


def unified_diff(a: str, b: str, label_a: str, label_b: str) -> str:
    """A word-per-line diff: model output rarely has useful line breaks."""
    words_a, words_b = a.split(" "), b.split(" ")
    return "\n".join(difflib.unified_diff(words_a, words_b, label_a, label_b, n=2, lineterm=""))


def all_same(labelled: Sequence[tuple[str, Completion]]) -> list[str]:
    """Every answer equals the first one."""
    if not labelled:
        return []
    base_label, base = labelled[0]
    problems = []
    for label, other in labelled[1:]:
        found = differences(base, other)
        if found:
            problems.append(f"{label} vs {base_label}: {'; '.join(found)}")
    return problems


def seeds_behave(first: Completion, again: Completion, other_seed: Completion) -> list[str]:
    """With sampling on, the same seed repeats its answer and a different seed changes it."""
    drift = differences(first, again)
    problems = [f"same seed {first.request.seed}, two requests: {'; '.join(drift)}"] if drift else []
    if not differences(first, other_seed):
        problems.append(
            f"seeds {first.request.seed} and {other_seed.request.seed} gave the same answer at "
            f"temperature {first.request.temperature}: the seed is ignored or sampling is off "
            f"(text {first.text[:SNIPPET]!r})"
        )
    return problems


def usage_problems(c: Completion, label: str) -> list[str]:
    """The server's token accounting must add up and respect ``max_tokens``."""
    problems = []
    u = c.usage
    if u is not None:
        if None in (u.prompt_tokens, u.completion_tokens, u.total_tokens):
            problems.append(f"{label}: usage lacks a count: {u}")
        elif u.prompt_tokens + u.completion_tokens != u.total_tokens:  # type: ignore[operator]
            problems.append(
                f"{label}: usage does not add up: prompt {u.prompt_tokens} + completion "
                f"{u.completion_tokens} != total {u.total_tokens}"
            )
    tokens = c.completion_tokens
    if tokens is None:
        problems.append(f"{label}: the server reported no token count (no usage, no metrics)")
        return problems
    if tokens > c.request.max_tokens:
        problems.append(f"{label}: {tokens} tokens generated, more than max_tokens={c.request.max_tokens}")
    if c.finish_reason == "length" and tokens != c.request.max_tokens:
        problems.append(f"{label}: finish_reason 'length' after {tokens} tokens, max_tokens={c.request.max_tokens}")
    if c.request.stream and c.content_chunks > tokens:
        problems.append(f"{label}: {c.content_chunks} text chunks streamed but only {tokens} tokens counted")
    if tokens > 0 and not c.text:
        problems.append(f"{label}: {tokens} tokens counted but the text is empty")
    return problems


def counts_agree(a: Completion, b: Completion, label_a: str, label_b: str) -> list[str]:
    """Two answers with the same text must be counted the same (e.g. streamed and not)."""
    if a.text != b.text or a.completion_tokens is None or b.completion_tokens is None:
        return []
    if a.completion_tokens != b.completion_tokens:
        return [f"same text but {label_a} counts {a.completion_tokens} tokens and {label_b} {b.completion_tokens}"]
    return []
