"""A ``tart`` executable for PATH or ``HARNESS_TART_BIN`` that runs the stand-in.

It pins the interpreter that wrote it, so the stand-in runs with the harness's own environment
whatever ``python3`` is first on PATH. Its first lines say it is the stand-in, for anyone who
finds it with ``which tart``.
"""

from __future__ import annotations

import sys
from pathlib import Path

SHIM_TEMPLATE = """#!/bin/sh
# THE TART STAND-IN (Linux, QEMU-backed), not tart. Written by harness.testing.tart_standin.shim.
exec {python} -m harness.testing.tart_standin "$@"
"""


def write_shim(directory: Path, python: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tart"
    path.write_text(SHIM_TEMPLATE.format(python=python or sys.executable))
    path.chmod(0o755)
    return path
