"""Train refchar on the corpus, deterministically (run by build.py inside the tools venv).

Usage: python train_model.py CORPUS OUTPUT_DIR [--steps N]
Writes OUTPUT_DIR/refchar/{weights.npz,Modelfile}. The same corpus and numpy give the same bytes
on every x86_64 CPU, whatever BLAS kernel or thread count runs: see `exact_matmul` for the matrix
products, and the rest uses only elementwise IEEE arithmetic (correctly rounded, so identical at
any SIMD width), fixed-order reductions and a seeded integer/uniform random stream. No
transcendental function from a CPU-dispatched math library touches the weights.
"""

from __future__ import annotations

import argparse
import math
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
DTYPE = np.float64
# Block floating point for the products: every operand becomes integers below 2**MANTISSA_BITS
# times one power of two per matrix, so a dot product of up to 2**MAX_INNER_BITS terms is an
# integer below 2**53 and float64 arithmetic computes it exactly, in any order and with or
# without FMA. That makes the result independent of which BLAS kernel or how many threads ran.
MANTISSA_BITS = 20
MAX_INNER_BITS = 12
LN2 = 0.6931471805599453
# Taylor coefficients 1/n! for exp on [-ln2/2, ln2/2]; degree 13 is below float64 resolution there.
EXP_COEFFICIENTS = tuple(1.0 / float(np.prod(np.arange(1, n + 1, dtype=np.float64))) for n in range(14))
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
        # Running products instead of beta ** step: pow() has CPU-specific variants in libm.
        self.beta1_power = 1.0
        self.beta2_power = 1.0

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        self.step_count += 1
        self.beta1_power *= self.beta1
        self.beta2_power *= self.beta2
        for name, grad in grads.items():
            m, v = self.moments.get(name, (np.zeros_like(grad), np.zeros_like(grad)))
            m = self.beta1 * m + (1 - self.beta1) * grad
            v = self.beta2 * v + (1 - self.beta2) * grad * grad
            self.moments[name] = (m, v)
            m_hat = m / (1 - self.beta1_power)
            v_hat = v / (1 - self.beta2_power)
            params[name] -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


def quantize(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Integers below 2**MANTISSA_BITS and the power of two that scales them back to ``x``."""
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        return np.zeros_like(x), 1.0
    _, exponent = math.frexp(peak)
    scale = 2.0 ** (MANTISSA_BITS - exponent)
    return np.rint(x * scale), scale


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape[-1] > 2 ** MAX_INNER_BITS:
        raise ValueError(f"inner dimension {a.shape[-1]} is too long for an exact product")
    qa, scale_a = quantize(a)
    qb, scale_b = quantize(b)
    return (qa @ qb) * (1.0 / (scale_a * scale_b))


def exact_exp(x: np.ndarray) -> np.ndarray:
    """exp for x <= 0 from multiplications and additions only (numpy's exp is CPU-dispatched)."""
    x = np.maximum(x, -700.0)
    k = np.floor(x / LN2 + 0.5)
    r = x - k * LN2
    poly = np.full_like(r, EXP_COEFFICIENTS[-1])
    for coefficient in reversed(EXP_COEFFICIENTS[:-1]):
        poly = poly * r + coefficient
    return np.ldexp(poly, k.astype(np.int64))


def uniform_init(rng: np.random.Generator, std: float, shape: tuple[int, ...]) -> np.ndarray:
    # A uniform draw is built from the generator's integers alone; normal draws call exp/log.
    return (rng.random(shape) * 2.0 - 1.0) * (std * math.sqrt(3.0))


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    fan_in = CONFIG.context * CONFIG.embed_dim
    return {
        "embed": uniform_init(rng, 0.5, (CONFIG.vocab_size, CONFIG.embed_dim)),
        "w1": uniform_init(rng, math.sqrt(2.0 / fan_in), (fan_in, CONFIG.hidden_dim)),
        "b1": np.zeros(CONFIG.hidden_dim, dtype=DTYPE),
        "w2": uniform_init(rng, 0.02, (CONFIG.hidden_dim, CONFIG.vocab_size)),
        "b2": np.zeros(CONFIG.vocab_size, dtype=DTYPE),
    }


def loss_and_grads(p: dict[str, np.ndarray], windows: np.ndarray, targets: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    batch = len(targets)
    x = p["embed"][windows].reshape(batch, -1)
    z1 = exact_matmul(x, p["w1"]) + p["b1"]
    h = np.maximum(z1, 0.0)
    logits = exact_matmul(h, p["w2"]) + p["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    probs = exact_exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    # Reported only, never fed back into the weights.
    loss = float(-np.log(probs[np.arange(batch), targets] + 1e-12).mean())
    dlogits = probs
    dlogits[np.arange(batch), targets] -= 1.0
    dlogits /= batch
    dh = exact_matmul(dlogits, p["w2"].T)
    dz1 = dh * (z1 > 0)
    dx = exact_matmul(dz1, p["w1"].T).reshape(batch, CONFIG.context, CONFIG.embed_dim)
    dembed = embedding_grad(windows, dx, p["embed"].shape)
    grads = {"embed": dembed, "w1": exact_matmul(x.T, dz1), "b1": dz1.sum(axis=0),
             "w2": exact_matmul(h.T, dlogits), "b2": dlogits.sum(axis=0)}
    return loss, grads


def embedding_grad(windows: np.ndarray, dx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # bincount per column is several times faster than np.add.at for this shape.
    flat_ids = windows.reshape(-1)
    flat_dx = dx.reshape(-1, shape[1])
    columns = [np.bincount(flat_ids, weights=flat_dx[:, j], minlength=shape[0]) for j in range(shape[1])]
    return np.stack(columns, axis=1).astype(DTYPE)


def train(windows: np.ndarray, targets: np.ndarray, steps: int = STEPS) -> tuple[dict[str, np.ndarray], float]:
    rng = np.random.default_rng(SEED)
    params = init_params(rng)
    optimiser = Adam()
    loss = float("nan")
    for step in range(steps):
        # A quadratic decay: cosine schedules call cos(), whose last bit varies between libms.
        remaining = 1.0 - step / steps
        lr = 0.0005 + (0.01 - 0.0005) * remaining * remaining
        picked = rng.integers(0, len(targets), BATCH)
        loss, grads = loss_and_grads(params, windows[picked], targets[picked])
        optimiser.update(params, grads, lr)
    return params, loss


def blas_description() -> str:
    """Which BLAS kernel and thread count trained, for the build log (the weights must not care)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl missing)"
    pools = [f"{p.get('internal_api')} {p.get('architecture')} x{p.get('num_threads')}"
             for p in threadpool_info() if p.get("user_api") == "blas"]
    return ", ".join(pools) or "none"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Train refchar on the corpus.")
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=STEPS, help="fewer steps for quick reproducibility probes")
    args = parser.parse_args(argv)
    tokenizer = CharTokenizer()
    assert tokenizer.size == CONFIG.vocab_size
    windows, targets = make_examples(read_dialogues(args.corpus), tokenizer)
    print(f"blas: {blas_description()}")
    params, loss = train(windows, targets, args.steps)
    out_dir = args.out_dir
    model_dir = out_dir / CONFIG.name
    save_weights(model_dir / "weights.npz", CONFIG, params)
    (model_dir / "Modelfile").write_text(MODELFILE.format(context=CONFIG.context), encoding="utf-8")
    model = CharMLP.load(model_dir / "weights.npz")
    print(f"trained {CONFIG.name}: {len(targets)} examples, final batch loss {loss:.3f}, sha256 {model.digest[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
