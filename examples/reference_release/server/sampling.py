"""Choosing the next token: greedy at temperature 0, otherwise seeded top-k/top-p sampling.

Probabilities are computed with Python floats (math.exp, a fixed summation order) and the
random stream is Python's Mersenne Twister, so a seed gives the same tokens on every platform.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_k: int | None
    top_p: float
    seed: int | None

    def is_greedy(self) -> bool:
        return self.temperature <= 0.0


def make_rng(seed: int | None) -> random.Random:
    if seed is None:
        return random.Random(int.from_bytes(os.urandom(16), "little"))
    return random.Random(seed)


def choose_token(logits: np.ndarray, params: SamplingParams, rng: random.Random) -> int:
    if params.is_greedy():
        # argmax returns the lowest index among equal maxima: ties are broken the same way always.
        return int(np.argmax(logits))
    scaled = (logits / params.temperature).tolist()
    ranked = sorted(range(len(scaled)), key=lambda i: (-scaled[i], i))
    if params.top_k:
        ranked = ranked[: params.top_k]
    top = scaled[ranked[0]]
    weights = [math.exp(scaled[i] - top) for i in ranked]
    ranked, weights = _nucleus(ranked, weights, params.top_p)
    threshold = rng.random() * math.fsum(weights)
    running = 0.0
    for token, weight in zip(ranked, weights):
        running += weight
        if threshold < running:
            return token
    return ranked[-1]


def _nucleus(ranked: list[int], weights: list[float], top_p: float) -> tuple[list[int], list[float]]:
    if top_p >= 1.0:
        return ranked, weights
    total = math.fsum(weights)
    kept = 0
    running = 0.0
    for weight in weights:
        running += weight
        kept += 1
        if running >= top_p * total:
            break
    return ranked[:kept], weights[:kept]
