"""The chat template: how OpenAI-style messages become the model's prompt text."""

from __future__ import annotations

from collections.abc import Iterable

ROLES = ("system", "user", "assistant")


def render_turn(role: str, content: str) -> str:
    return f"{role}: {content.strip()}\n"


def render_prompt(messages: Iterable[tuple[str, str]]) -> str:
    """Every message as `role: content` on its own line, then the assistant's cue."""
    return "".join(render_turn(role, content) for role, content in messages) + "assistant: "
