"""Text kept at both ends when it is too long to keep whole: the start says what a step began
doing, the end what it was doing when it stopped, and the middle is counted, not stored. Where
only the end fits (an error's detail), :func:`last_lines` keeps the end alone."""

from __future__ import annotations


def dropped_note(count: int) -> str:
    return f"\n[... {count} bytes of output dropped here ...]\n"


def both_ends(text: str, keep_bytes: int) -> str:
    """``text`` whole when its UTF-8 form fits in ``2 * keep_bytes``, else its first and last
    ``keep_bytes`` with a note of what was dropped between them."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= 2 * keep_bytes:
        return text
    head, tail = data[:keep_bytes], data[-keep_bytes:]
    return (head.decode("utf-8", errors="replace") + dropped_note(len(data) - 2 * keep_bytes)
            + tail.decode("utf-8", errors="replace"))


def last_lines(text: str, count: int) -> str:
    """The last ``count`` lines of ``text``: where a failed command says why it stopped."""
    return "\n".join(text.splitlines()[-count:])
