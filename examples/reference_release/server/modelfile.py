"""Finding and reading a model under modelfiles/: a Modelfile (FROM + PARAMETER lines) and weights."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .model import CharMLP

DEFAULT_MODEL = "refchar"


@dataclass(frozen=True)
class ModelDefinition:
    name: str
    weights: Path
    parameters: dict[str, str] = field(default_factory=dict)

    def parameter(self, key: str, default: float) -> float:
        return float(self.parameters.get(key, default))


class ModelNotFound(Exception):
    pass


def candidate_dirs(explicit: str | None) -> list[Path]:
    """Where modelfiles/ may be: the flag, REFAPP_MODELFILES, beside the server package, cwd."""
    dirs = [explicit, os.environ.get("REFAPP_MODELFILES")]
    found = [Path(d) for d in dirs if d]
    found.append(Path(__file__).resolve().parent.parent / "modelfiles")
    found.append(Path.cwd() / "modelfiles")
    return found


def parse_modelfile(name: str, path: Path) -> ModelDefinition:
    weights: Path | None = None
    parameters: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword == "FROM":
            weights = (path.parent / rest.strip()).resolve()
        elif keyword == "PARAMETER":
            key, _, value = rest.strip().partition(" ")
            parameters[key] = value.strip()
    if weights is None:
        raise ModelNotFound(f"{path}: no FROM line naming the weights file")
    return ModelDefinition(name=name, weights=weights, parameters=parameters)


def find_model(name: str, explicit_dir: str | None = None) -> ModelDefinition:
    searched = candidate_dirs(explicit_dir)
    for base in searched:
        modelfile = base / name / "Modelfile"
        if modelfile.is_file():
            return parse_modelfile(name, modelfile)
    places = ", ".join(str(p) for p in searched)
    raise ModelNotFound(f"model {name!r} not found; looked for {name}/Modelfile under: {places}")


def load_model(definition: ModelDefinition) -> CharMLP:
    if not definition.weights.is_file():
        raise ModelNotFound(f"weights file {definition.weights} named by the Modelfile is missing")
    return CharMLP.load(definition.weights)
