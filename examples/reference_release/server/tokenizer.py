"""Character tokenizer: one token per character, plus an end-of-turn token.

The vocabulary is fixed (not learnt from the corpus) so that a prompt with any printable
ASCII text encodes the same way whatever the model was trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

END_OF_TURN = "\x00"
UNKNOWN = "?"
VOCABULARY: tuple[str, ...] = (END_OF_TURN, "\n", *(chr(c) for c in range(32, 127)))


@dataclass(frozen=True)
class CharTokenizer:
    vocabulary: tuple[str, ...] = VOCABULARY
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {ch: i for i, ch in enumerate(self.vocabulary)})

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    @property
    def end_of_turn(self) -> int:
        return self._index[END_OF_TURN]

    def encode(self, text: str) -> list[int]:
        # Tabs and carriage returns are folded rather than rejected: prompts come from users.
        text = text.replace("\r\n", "\n").replace("\t", " ")
        unknown = self._index[UNKNOWN]
        return [self._index.get(ch, unknown) for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocabulary[i] for i in ids if i != self.end_of_turn)

    def piece(self, token: int) -> str:
        return "" if token == self.end_of_turn else self.vocabulary[token]


def context_window(ids: Sequence[int], size: int, pad: int) -> list[int]:
    """The last `size` ids, left-padded with `pad` (the end-of-turn token)."""
    tail = list(ids[-size:])
    return [pad] * (size - len(tail)) + tail
