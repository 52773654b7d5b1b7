"""Turning a prompt into text: max_tokens, stop sequences, end-of-turn, usage counts.

Streaming and non-streaming answers both iterate one `Generation`, so the streamed pieces
always join to the non-streamed text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .model import CharMLP
from .sampling import SamplingParams, choose_token, make_rng
from .tokenizer import CharTokenizer, context_window


@dataclass
class Generation:
    model: CharMLP
    tokenizer: CharTokenizer
    prompt: str
    params: SamplingParams
    max_tokens: int
    stop: tuple[str, ...] = ()
    finish_reason: str | None = field(default=None, init=False)
    completion_tokens: int = field(default=0, init=False)
    text: str = field(default="", init=False)

    @property
    def prompt_tokens(self) -> int:
        return len(self.tokenizer.encode(self.prompt))

    def __iter__(self) -> Iterator[str]:
        """Yield text pieces that are final: never part of a stop sequence."""
        ids = self.tokenizer.encode(self.prompt)
        rng = make_rng(self.params.seed)
        holdback = max((len(s) for s in self.stop), default=1) - 1
        pending = ""
        emitted = ""
        while self.completion_tokens < self.max_tokens:
            window = context_window(ids, self.model.config.context, self.tokenizer.end_of_turn)
            token = choose_token(self.model.logits(window), self.params, rng)
            if token == self.tokenizer.end_of_turn:
                self.finish_reason = "stop"
                break
            self.completion_tokens += 1
            ids.append(token)
            pending += self.tokenizer.piece(token)
            cut = _first_stop(pending, self.stop)
            if cut is not None:
                pending = pending[:cut]
                self.finish_reason = "stop"
                break
            safe = len(pending) - holdback
            if safe > 0:
                emitted += pending[:safe]
                yield pending[:safe]
                pending = pending[safe:]
        if self.finish_reason is None:
            self.finish_reason = "length"
        if pending:
            emitted += pending
            yield pending
        self.text = emitted

    def run(self) -> str:
        for _ in self:
            pass
        return self.text


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None
