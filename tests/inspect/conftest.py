"""Shared helpers for the static-inspection tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the synth helpers sit beside the tests
