"""Train refchar on the corpus, deterministically (run by build.py inside the tools venv).

Usage: python train_model.py CORPUS OUTPUT_DIR
Writes OUTPUT_DIR/refchar/{weights.npz,Modelfile}. The same corpus, numpy and CPU family give
the same bytes: one BLAS thread, a fixed seed, a fixed number of steps.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.chat import render_turn
from server.model import CharMLP, ModelConfig, save_weights
from server.tokenizer import END_OF_TURN, CharTokenizer, context_window

SEED = 20240611
CONFIG = ModelConfig(name="refchar", context=32, embed_dim=16, hidden_dim=192, vocab_size=97)
STEPS = 2500
BATCH = 256
DTYPE = np.float32
MODELFILE = """\
# refchar: the reference release's character model (trained at build time, see refbuild/train_model.py)
FROM ./weights.npz
PARAMETER temperature 0.7
PARAMETER top_k 40
PARAMETER top_p 1.0
PARAMETER num_ctx {context}
"""


def read_dialogues(path: Path) -> list[str]:
    """Each block becomes `role: text` lines with the final assistant answer closed by end-of-turn."""
    blocks: list[str] = []
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if raw.strip():
            lines.append(raw)
            continue
        if lines:
            turns = [line.partition(": ") for line in lines]
            blocks.append("".join(render_turn(role, text) for role, _, text in turns)[:-1] + END_OF_TURN)
            lines = []
    return blocks


def make_examples(blocks: list[str], tokenizer: CharTokenizer) -> tuple[np.ndarray, np.ndarray]:
    windows, targets = [], []
    for block in blocks:
        ids = tokenizer.encode(block)
        for t in range(1, len(ids)):
            windows.append(context_window(ids[:t], CONFIG.context, tokenizer.end_of_turn))
            targets.append(ids[t])
    return np.array(windows, dtype=np.int64), np.array(targets, dtype=np.int64)


@dataclass
class Adam:
    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    step_count: int = 0

    def __post_init__(self) -> None:
        self.moments: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        self.step_count += 1
        for name, grad in grads.items():
            m, v = self.moments.get(name, (np.zeros_like(grad), np.zeros_like(grad)))
            m = self.beta1 * m + (1 - self.beta1) * grad
            v = self.beta2 * v + (1 - self.beta2) * grad * grad
            self.moments[name] = (m, v)
            m_hat = m / (1 - self.beta1 ** self.step_count)
            v_hat = v / (1 - self.beta2 ** self.step_count)
            params[name] -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    fan_in = CONFIG.context * CONFIG.embed_dim
    params = {
        "embed": rng.normal(0.0, 0.5, (CONFIG.vocab_size, CONFIG.embed_dim)),
        "w1": rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, CONFIG.hidden_dim)),
        "b1": np.zeros(CONFIG.hidden_dim),
        "w2": rng.normal(0.0, 0.02, (CONFIG.hidden_dim, CONFIG.vocab_size)),
        "b2": np.zeros(CONFIG.vocab_size),
    }
    return {name: value.astype(DTYPE) for name, value in params.items()}


def loss_and_grads(p: dict[str, np.ndarray], windows: np.ndarray, targets: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    batch = len(targets)
    x = p["embed"][windows].reshape(batch, -1)
    z1 = x @ p["w1"] + p["b1"]
    h = np.maximum(z1, 0.0)
    logits = h @ p["w2"] + p["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = float(-np.log(probs[np.arange(batch), targets] + 1e-12).mean())
    dlogits = probs
    dlogits[np.arange(batch), targets] -= 1.0
    dlogits /= batch
    dh = dlogits @ p["w2"].T
    dz1 = dh * (z1 > 0)
    dx = (dz1 @ p["w1"].T).reshape(batch, CONFIG.context, CONFIG.embed_dim)
    dembed = embedding_grad(windows, dx, p["embed"].shape)
    grads = {"embed": dembed, "w1": x.T @ dz1, "b1": dz1.sum(axis=0), "w2": h.T @ dlogits, "b2": dlogits.sum(axis=0)}
    return loss, grads


def embedding_grad(windows: np.ndarray, dx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # bincount per column is several times faster than np.add.at for this shape.
    flat_ids = windows.reshape(-1)
    flat_dx = dx.reshape(-1, shape[1])
    columns = [np.bincount(flat_ids, weights=flat_dx[:, j], minlength=shape[0]) for j in range(shape[1])]
    return np.stack(columns, axis=1).astype(DTYPE)


def train(windows: np.ndarray, targets: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
    rng = np.random.default_rng(SEED)
    params = init_params(rng)
    optimiser = Adam()
    loss = float("nan")
    for step in range(STEPS):
        lr = float(0.0005 + 0.5 * (0.01 - 0.0005) * (1 + np.cos(np.pi * step / STEPS)))
        picked = rng.integers(0, len(targets), BATCH)
        loss, grads = loss_and_grads(params, windows[picked], targets[picked])
        optimiser.update(params, grads, lr)
    return params, loss


def main(argv: list[str]) -> int:
    corpus, out_dir = Path(argv[0]), Path(argv[1])
    tokenizer = CharTokenizer()
    assert tokenizer.size == CONFIG.vocab_size
    windows, targets = make_examples(read_dialogues(corpus), tokenizer)
    params, loss = train(windows, targets)
    model_dir = out_dir / CONFIG.name
    save_weights(model_dir / "weights.npz", CONFIG, params)
    (model_dir / "Modelfile").write_text(MODELFILE.format(context=CONFIG.context), encoding="utf-8")
    model = CharMLP.load(model_dir / "weights.npz")
    print(f"trained {CONFIG.name}: {len(targets)} examples, final batch loss {loss:.3f}, sha256 {model.digest[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
