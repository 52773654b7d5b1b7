"""The model's weights: trained at build time in the tools venv, cached by corpus and code."""

from __future__ import annotations

import os
from pathlib import Path

from .cache import cached_dir
from .config import TOOL_PINS, BuildPaths
from .hashing import digest_paths
from .tools import run

REFBUILD = Path(__file__).resolve().parent


def model_inputs(paths: BuildPaths) -> list[Path]:
    server = paths.server_sources
    return [paths.root / "corpus", REFBUILD / "train_model.py",
            server / "model.py", server / "tokenizer.py", server / "chat.py"]


def training_log(paths: BuildPaths) -> Path:
    """The trainer's output, which names the BLAS kernel and thread count that ran."""
    return paths.build / "logs" / "training.log"


def ensure_modelfiles(paths: BuildPaths, tools_python: Path) -> Path:
    """Directory holding refchar/{Modelfile,weights.npz}, i.e. the release's modelfiles/."""
    key = digest_paths(model_inputs(paths), extra=TOOL_PINS)
    # No BLAS thread or kernel setting here on purpose: training is exact whatever the CPU picks.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    root = cached_dir(paths.cache("model", key), "training refchar",
                      lambda tmp: run([str(tools_python), str(REFBUILD / "train_model.py"),
                                       str(paths.root / "corpus" / "dialogues.txt"), str(tmp / "modelfiles")],
                                      "training the model", training_log(paths), env=env))
    return root / "modelfiles"
