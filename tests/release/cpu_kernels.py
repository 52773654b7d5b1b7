"""Simulated other CPUs for reproducibility tests: OpenBLAS kernels and numpy's own SIMD dispatch.

A machine with another CPU differs from this one in two ways a Python build can see: OpenBLAS
picks another kernel (its blocking and FMA use change the last bits of a float product), and
numpy's ufuncs dispatch to other instruction sets. ``OPENBLAS_CORETYPE`` forces a kernel and
``NPY_DISABLE_CPU_FEATURES`` switches numpy's dispatched paths off; a kernel whose instructions
this CPU lacks dies with SIGILL, so the runnable ones are probed, never assumed.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# From oldest to newest instruction sets; several map to one kernel (threadpoolctl tells which).
CORETYPES = ("Prescott", "Nehalem", "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids")
PROBE_TIMEOUT_S = 120
# The kernel that really ran, and the digest of one float32 product computed with it.
_PROBE = """
import hashlib
import numpy as np
from threadpoolctl import threadpool_info
a = np.random.default_rng(1).random((256, 512), dtype=np.float32)
b = np.random.default_rng(2).random((512, 192), dtype=np.float32)
blas = [p for p in threadpool_info() if p["user_api"] == "blas"][0]
print(blas["architecture"], hashlib.sha256((a @ b).tobytes()).hexdigest())
"""
_DISPATCHED = """
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
print(" ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f)))
"""


@dataclass(frozen=True)
class Kernel:
    coretype: str  # what OPENBLAS_CORETYPE was set to
    architecture: str  # what OpenBLAS says it really used
    product_digest: str  # sha256 of a float32 matrix product under this kernel

    def env(self, threads: int) -> dict[str, str]:
        return {**os.environ, "OPENBLAS_CORETYPE": self.coretype, "OPENBLAS_NUM_THREADS": str(threads)}


def _run(python: Path, code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True,
                          check=False, timeout=PROBE_TIMEOUT_S)


def default_architecture(python: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    result = _run(python, _PROBE, env)
    assert result.returncode == 0, f"numpy/threadpoolctl probe failed in {python}:\n{result.stderr[-2000:]}"
    return result.stdout.split()[0]


def runnable_kernels(python: Path) -> list[Kernel]:
    """One coretype per distinct kernel that runs on this CPU."""
    found: dict[str, Kernel] = {}
    for coretype in CORETYPES:
        result = _run(python, _PROBE, {**os.environ, "OPENBLAS_CORETYPE": coretype})
        if result.returncode != 0:
            continue
        architecture, digest = result.stdout.split()
        found.setdefault(architecture, Kernel(coretype, architecture, digest))
    return list(found.values())


def numpy_dispatch_disabled(python: Path) -> dict[str, str]:
    """An environment in which numpy uses its baseline code paths only."""
    result = _run(python, _DISPATCHED, dict(os.environ))
    assert result.returncode == 0, result.stderr[-2000:]
    return {**os.environ, "NPY_DISABLE_CPU_FEATURES": result.stdout.strip()}
