"""barenet's own threads: large work split into parts that run on a small thread pool.

NumPy releases the GIL inside its loops, so NumPy calls on disjoint parts of an array
run on separate cores. The image layers split along the axis that is outermost in memory
(the channels of their batch-last arrays, the columns of a matrix product), so each part
is one contiguous block. Element-wise work gives the same result bit for bit whatever the
number of parts; a matrix product split by columns may differ in the last bit, because
BLAS picks its kernels by the shape it is given.

Work is split only inside ``blas_on_one_thread()``, which ``Sequential`` enters while a
model with image layers trains or predicts: BLAS's own threads spin while they wait, and
beside them the pool loses more than it gains. Measured on 2 cores, with BLAS on one
thread: ReLU over 3.2 million float32 values 1.20 -> 0.72 ms, the im2col copy of a
32-channel 14x14 batch of 128 2.2 -> 1.1 ms. Handing work to the pool costs about 55 us, so
arrays under ``MIN_SIZE`` values and products under ``MIN_PRODUCT`` multiply-adds stay in
one call.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = [
    "MIN_PRODUCT",
    "MIN_SIZE",
    "WORKERS",
    "blas_on_one_thread",
    "for_parts",
    "map_parts",
    "matmul",
    "parts",
]

MIN_SIZE = 262_144
MIN_PRODUCT = 4_000_000
WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
_PREFIX = "barenet-parallel"
_pool: ThreadPoolExecutor | None = None
_controller: ThreadpoolController | None = None
_limiter: Any = None  # threadpoolctl's limit while any blas_on_one_thread() block runs
_one_thread_blocks = 0  # how many such blocks are running
_lock = threading.Lock()


def parts(length: int, size: int, minimum: int | None = None) -> list[slice]:
    """Contiguous slices covering ``range(length)``: one per worker when the work's
    ``size`` is at least ``minimum`` (``MIN_SIZE`` values unless given) and BLAS is on one
    thread (``blas_on_one_thread``), else the single ``slice(None)``."""
    count = min(WORKERS, length)
    if (
        size < (MIN_SIZE if minimum is None else minimum)
        or count < 2
        or not _one_thread_blocks
        or threading.current_thread().name.startswith(_PREFIX)
    ):
        return [slice(None)]
    bounds = [length * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def for_parts(
    work: Callable[[slice], object], length: int, size: int, minimum: int | None = None
) -> None:
    """Call ``work(part)`` for each slice of ``parts(length, size, minimum)``, in parallel
    when there are several, and return when all are done (re-raising an error of any
    part). ``work`` must write only to its own part."""
    slices = parts(length, size, minimum)
    if len(slices) == 1:
        work(slices[0])
        return
    global _pool
    with _lock:
        _pool = _pool or ThreadPoolExecutor(WORKERS, thread_name_prefix=_PREFIX)
    jobs = [_pool.submit(work, s) for s in slices[1:]]
    try:
        work(slices[0])  # the calling thread takes the first part rather than wait idle
    finally:
        for job in jobs:
            job.result()


def map_parts(work: Callable[..., object], out: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    """Call ``work(out[part], *(a[part] for a in arrays))`` over parts of the axis of
    ``out`` that is outermost in memory (``arrays`` have the shape of ``out``); return
    ``out``. For element-wise work such as ``np.maximum(a, 0, out=o)``."""
    if out.size < MIN_SIZE or not _one_thread_blocks:  # the common case, without overhead
        work(out, *arrays)
        return out
    axis = int(np.argmax(np.abs(out.strides)))

    def one(part: slice) -> None:
        index = (slice(None),) * axis + (part,)
        work(out[index], *(a[index] for a in arrays))

    for_parts(one, out.shape[axis], out.size)
    return out


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D arrays, the columns of the result split over the pool when the
    product takes at least ``MIN_PRODUCT`` multiply-adds. Each part is one BLAS call on its
    own thread; inside ``blas_on_one_thread()`` that is BLAS's only thread."""
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    multiply_adds = a.shape[0] * a.shape[1] * b.shape[1]
    for_parts(
        lambda s: np.matmul(a, b[:, s], out=out[:, s]), b.shape[1], multiply_adds, MIN_PRODUCT
    )
    return out


@contextmanager
def blas_on_one_thread() -> Iterator[None]:
    """Run BLAS (NumPy's matrix products) on one thread while the block runs, and let
    barenet split its large work over its own pool meanwhile (outside such a block,
    nothing is split).

    BLAS's threads wait for work by spinning, so left on they hold the cores the pool
    needs: a CNN training step took 87-91 ms with BLAS on 2 threads and barenet's work on
    one, 98-100 ms with both on 2, and 72-80 ms with BLAS on 1 and barenet's pool on 2;
    and a 784-512-256-10 MLP epoch (batch 128) took 2.0-2.8 s with its Adam update split
    beside BLAS's 2 threads, 1.7-1.9 s without. The previous BLAS limits are restored
    afterwards (``threadpoolctl``)."""
    global _controller, _limiter, _one_thread_blocks
    if WORKERS < 2:
        yield
        return
    # One limit for all running blocks (threads may end theirs in any order): the first
    # block sets it, the last one restores what was there before.
    with _lock:
        if _one_thread_blocks == 0:
            _controller = _controller or ThreadpoolController()
            _limiter = _controller.limit(limits=1, user_api="blas")
        _one_thread_blocks += 1
    try:
        yield
    finally:
        with _lock:
            _one_thread_blocks -= 1
            if _one_thread_blocks == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None
