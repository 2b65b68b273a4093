"""The arithmetic floor of a workload: its floating-point operations divided by the
rate NumPy's BLAS sustains on large single-precision products (SGEMM) on this machine.

No library can train or predict faster than its matrix products alone would take at
that rate, so ``seconds / floor`` says how much of the time goes to everything else
(element-wise passes, memory traffic, Python, small products that run below peak).
"""

from __future__ import annotations

import itertools
import time

import numpy as np


def sgemm_gflops(side: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of ``a @ b`` for float32 ``side x side`` matrices: the best of ``reps``
    timed products after one warm-up, with BLAS's threads as they are set."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((side, side), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * side**3 / best / 1e9


def mlp_flops(sizes: list[int], samples: int, *, train: bool) -> float:
    """Multiply-adds x 2 of an MLP on ``samples`` images: the forward products, and for
    training also the weight gradients and the input gradients of every layer but the
    first (nobody needs the gradient of the images)."""
    layers = list(itertools.pairwise(sizes))
    forward = sum(a * b for a, b in layers)
    if not train:
        return 2.0 * samples * forward
    return 2.0 * samples * (2 * forward + sum(a * b for a, b in layers[1:]))


def conv_flops(shapes: list[tuple[int, int, int, int]], dense: list[int], samples: int) -> float:
    """Training FLOPs of a CNN on ``samples`` images: each 3x3 convolution
    ``(in_channels, out_channels, height, width)`` ('same' padding, output height x width)
    and each dense product (``dense`` widths) three times (forward, weight gradient,
    input gradient), except the first layer's input gradient."""
    per_layer = [2.0 * c_in * c_out * 9 * h * w for c_in, c_out, h, w in shapes]
    per_layer += [2.0 * a * b for a, b in itertools.pairwise(dense)]
    return samples * (3 * sum(per_layer) - per_layer[0])
