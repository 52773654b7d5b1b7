"""Small text helpers the reports share: sizes, durations, symbols, short digests."""

from __future__ import annotations

import datetime as dt

SYMBOLS: dict[str, str] = {"passed": "✔", "failed": "✘", "broken": "⚠", "skipped": "–"}
NOT_RUN = "·"


def human_bytes(count: int) -> str:
    """``count`` bytes in binary units, as people read sizes: ``1010 B``, ``4.2 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.2f} s"
    if value < 120:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)  # whole seconds first: never "6 min 60 s"
    return f"{minutes} min {rest} s"


def short_sha(sha: str, length: int = 12) -> str:
    return sha[:length] if sha else "–"


def timestamp(epoch: float | None) -> str:
    if not epoch:
        return "–"
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def first_lines(text: str, count: int = 12) -> str:
    lines = text.strip().splitlines()
    return "\n".join(
        lines[:count] + ([f"… ({len(lines) - count} more lines)"] if len(lines) > count else [])
    )
