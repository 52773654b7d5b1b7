"""What a test does when a host tool it needs is missing: on a desk it skips with the way to get
the tool; in CI (``CI`` set, as ``.ci/run`` does) it fails, because CI installs every tool and a
skip there would be a cross-check that silently stopped running."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {message}")
    pytest.skip(message)
