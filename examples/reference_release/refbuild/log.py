"""Progress goes to stderr so that stdout carries only the built tarballs' paths."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def info(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    started = time.monotonic()
    info(f"{title} ...")
    yield
    info(f"{title}: done in {time.monotonic() - started:.1f}s")
