"""The language model: a fixed-context character MLP (embedding -> ReLU layer -> logits).

The forward pass uses only multiplications, additions and max(0, x), evaluated in a fixed
order without BLAS, so greedy decoding gives the same tokens on every x86_64/arm64 CPU,
whatever SIMD width numpy picks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHT_NAMES = ("embed", "w1", "b1", "w2", "b2")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    context: int
    embed_dim: int
    hidden_dim: int
    vocab_size: int

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls(**json.loads(text))


def matvec(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Row-wise accumulation (axis=0) has one summation order on every CPU; `x @ w` would
    # hand the order to whichever BLAS kernel the CPU selects.
    return np.add.reduce(x[:, None] * w, axis=0)


@dataclass(frozen=True)
class CharMLP:
    config: ModelConfig
    embed: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    digest: str

    def logits(self, window: list[int]) -> np.ndarray:
        """Next-token logits (float64) for a window of exactly `config.context` token ids."""
        x = self.embed[window].reshape(-1)
        hidden = np.maximum(matvec(x, self.w1) + self.b1, 0.0)
        return matvec(hidden, self.w2) + self.b2

    @classmethod
    def load(cls, path: Path) -> CharMLP:
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as data:
            config = ModelConfig.from_json(str(data["config"]))
            arrays = {name: np.asarray(data[name], dtype=np.float64) for name in WEIGHT_NAMES}
        return cls(config=config, digest=hashlib.sha256(raw).hexdigest(), **arrays)


def save_weights(path: Path, config: ModelConfig, arrays: dict[str, np.ndarray]) -> None:
    """Write weights as an uncompressed .npz with fixed member timestamps (reproducible bytes)."""
    import io
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    members = {"config": np.array(config.to_json())}
    members.update({name: np.asarray(arrays[name], dtype=np.float32) for name in WEIGHT_NAMES})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in members.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
