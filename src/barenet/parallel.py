"""barenet's threading policy, all of it: when work is split over threads, how, and what
BLAS (NumPy's matrix products) does meanwhile.

The rules
---------
* **Which models.** A model holding one of ``SPLITTING_LAYERS`` (the image layers and
  BatchNorm, whose element-wise work is large) runs inside ``blas_on_one_thread()`` while
  it trains, predicts or evaluates (``threads_for``). A network of dense layers keeps
  BLAS's own threads and no pool: its products are small and back to back, where BLAS's
  threads hand over fastest.
* **Inside the block** BLAS runs on one thread and barenet splits large work over its own
  small pool. BLAS's threads wait for work by spinning, so beside the pool they would hold
  the cores it needs. Outside any block nothing is split.
* **What is split.** A kernel ``kernel(part, *args)`` is called once per contiguous slice
  of an axis (``split``): the axis outermost in memory, so each part is one contiguous
  block and parts write disjoint memory. Work under ``min_size`` values (element-wise) or
  ``min_product`` multiply-adds (matrix products) stays in one call: handing work to the
  pool costs more than it saves on small arrays.
* **Never nested.** A kernel running on the pool does not split again (it would wait on
  the pool it runs on).
* **Same numbers.** Element-wise work gives the same result bit for bit whatever the
  number of parts. A matrix product split by columns (and BatchNorm's sums, which are
  matrix-vector products) may differ in the last bit, because BLAS picks its kernels by
  the shape it is given, and so may BLAS itself on one thread or two.
* **Busy cores.** While a model trains, ``Tuner`` times its steps and drops to one thread
  when another program holds a core (two threads then wait on each other, up to ten
  times slower); on an idle machine every step keeps all threads. ``configure(tune=False)``
  turns this off.

The switch
----------
``configure(workers=N)``: how many threads share the work (the pool's size, the calling
thread included). ``workers=1`` turns the pool and the BLAS limit off. The default is the
number of cores this process may use, at most 4. ``configure`` also takes the two
thresholds and ``tune``, and returns the previous settings so ``configure(**previous)``
restores them.

Layers call ``split``, ``map_parts`` (element-wise, over the outermost axis) or ``matmul``
(split by columns) and know nothing else about threads. What each choice was worth when it
was measured is in BENCHMARKS.md ("Where the time goes: threads").
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from barenet.errors import ArgumentError, check_int

__all__ = [
    "SPLITTING_LAYERS",
    "Tuner",
    "blas_on_one_thread",
    "configure",
    "for_parts",
    "map_parts",
    "matmul",
    "parts",
    "settings",
    "split",
    "threads_for",
]

#: Layer classes (by name, subclasses included) whose models run inside
#: ``blas_on_one_thread()``. A layer missing here still computes correctly: its work is
#: simply not split unless another layer of its model is listed.
SPLITTING_LAYERS = frozenset({"Conv2D", "MaxPool2D", "AvgPool2D", "BatchNorm"})

_PREFIX = "barenet-parallel"
_settings = {
    "workers": min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1),
    "min_size": 262_144,  # values of element-wise work
    "min_product": 4_000_000,  # multiply-adds of a matrix product
    "tune": 1,  # 1: while training, drop to one thread when the cores are busy (Tuner)
}
_tuned: int | None = None  # threads the running Tuner chose, when fewer than ``workers``
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_controller: ThreadpoolController | None = None
_limiter: Any = None  # threadpoolctl's limit while any blas_on_one_thread() block runs
_one_thread_blocks = 0  # how many such blocks are running
_lock = threading.Lock()


def __getattr__(name: str) -> int:
    """``WORKERS``, ``MIN_SIZE`` and ``MIN_PRODUCT``: the current settings, read-only (set
    them with ``configure``)."""
    key = {"WORKERS": "workers", "MIN_SIZE": "min_size", "MIN_PRODUCT": "min_product"}
    if name in key:
        return _settings[key[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def settings() -> dict[str, int]:
    """The current settings: ``workers``, ``min_size``, ``min_product``."""
    return dict(_settings)


def configure(
    workers: int | None = None,
    *,
    min_size: int | None = None,
    min_product: int | None = None,
    tune: bool | None = None,
) -> dict[str, int]:
    """Set the threading policy (arguments left None stay as they are) and return the
    previous settings. Call it before work starts, not while a model runs. ``tune=False``
    keeps training on ``workers`` threads even when the cores are busy (see ``Tuner``)."""
    global _pool, _pool_size
    given = {"workers": workers, "min_size": min_size, "min_product": min_product}
    checked = {k: check_int(k, v) for k, v in given.items() if v is not None}
    if tune is not None:
        if not isinstance(tune, (bool, int)) or tune not in (0, 1):
            raise ArgumentError(f"tune must be True or False, got {tune!r}")
        checked["tune"] = int(tune)
    with _lock:
        previous = dict(_settings)
        _settings.update(checked)
        if _pool is not None and _pool_size != _settings["workers"]:
            _pool.shutdown(wait=False)  # work already handed over still runs
            _pool, _pool_size = None, 0
    return previous


_SPLITS: dict[type, bool] = {}
_NOTHING = nullcontext()  # reusable: nullcontext keeps no state between uses


def _splits(cls: type) -> bool:
    """Whether layers of class ``cls`` are (or derive from) one of ``SPLITTING_LAYERS``:
    worked out once per class, since a model asks before every call to predict."""
    known = _SPLITS.get(cls)
    if known is None:
        known = _SPLITS[cls] = any(c.__name__ in SPLITTING_LAYERS for c in cls.__mro__)
    return known


def _splitting(layers: Iterable[Any]) -> bool:
    """Whether one of ``layers`` is in ``SPLITTING_LAYERS``."""
    for layer in layers:  # a plain loop: this runs before every call to predict
        if _splits(type(layer)):
            return True
    return False


def threads_for(layers: Iterable[Any]) -> AbstractContextManager[None]:
    """What a model of these layers runs inside while it trains, predicts or evaluates:
    ``blas_on_one_thread()`` when one of them is in ``SPLITTING_LAYERS``, else nothing."""
    return blas_on_one_thread() if _splitting(layers) else _NOTHING


def parts(length: int, size: int, minimum: int | None = None) -> list[slice]:
    """Contiguous slices covering ``range(length)``: one per worker when the work's
    ``size`` is at least ``minimum`` (``min_size`` unless given), inside a
    ``blas_on_one_thread()`` block and not on a pool thread; else the single
    ``slice(None)``."""
    count = min(_tuned or _settings["workers"], length)
    if (
        size < (_settings["min_size"] if minimum is None else minimum)
        or count < 2
        or not _one_thread_blocks
        or threading.current_thread().name.startswith(_PREFIX)
    ):
        return [slice(None)]
    bounds = [length * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def split(
    kernel: Callable[..., object],
    length: int,
    *args: Any,
    values: int = 0,
    multiply_adds: int = 0,
) -> None:
    """Call ``kernel(part, *args)`` for slices ``part`` covering ``range(length)``, in
    parallel when the work is large: ``values`` (element-wise work) at least ``min_size``,
    or ``multiply_adds`` (a matrix product) at least ``min_product``. Return when every
    part is done, re-raising an error of any part. ``kernel`` writes only to its part."""
    if multiply_adds:
        size, minimum = multiply_adds, _settings["min_product"]
    else:
        size, minimum = values, _settings["min_size"]
    if size < minimum or not _one_thread_blocks or _tuned == 1:  # the common case, at once
        kernel(slice(None), *args)
    else:
        _run(kernel, parts(length, size, minimum), args)


def _run(kernel: Callable[..., object], slices: list[slice], args: tuple) -> None:
    """``kernel(part, *args)`` for each slice, the first on the calling thread."""
    if len(slices) == 1:
        kernel(slices[0], *args)
        return
    global _pool, _pool_size
    with _lock:
        if _pool is None:
            _pool_size = _settings["workers"]
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix=_PREFIX)
        jobs = [_pool.submit(kernel, s, *args) for s in slices[1:]]
    try:
        kernel(slices[0], *args)  # the calling thread takes the first part rather than wait
    finally:
        for job in jobs:
            job.result()


def for_parts(
    work: Callable[[slice], object], length: int, size: int, minimum: int | None = None
) -> None:
    """``work(part)`` over ``parts(length, size, minimum)``, as ``split`` does (the
    older spelling, kept for code that uses it)."""
    _run(work, parts(length, size, minimum), ())


def _outermost_part(
    part: slice, kernel: Callable[..., object], axis: int, out: np.ndarray, arrays: tuple
) -> None:
    index = (slice(None),) * axis + (part,)
    kernel(out[index], *(a[index] for a in arrays))


def map_parts(kernel: Callable[..., object], out: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    """Call ``kernel(out[part], *(a[part] for a in arrays))`` over parts of the axis of
    ``out`` that is outermost in memory (``arrays`` have the shape of ``out``); return
    ``out``. For element-wise work such as ``np.maximum(a, 0, out=o)``."""
    if out.size < _settings["min_size"] or not _one_thread_blocks or _tuned == 1:
        kernel(out, *arrays)
        return out
    axis = int(np.argmax(np.abs(out.strides)))
    split(_outermost_part, out.shape[axis], kernel, axis, out, arrays, values=out.size)
    return out


def _columns(part: slice, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    np.matmul(a, b[:, part], out=out[:, part])


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D arrays, the columns of the result split over the pool when the
    product is large. Each part is one BLAS call on its own thread."""
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    split(_columns, b.shape[1], a, b, out, multiply_adds=a.shape[0] * a.shape[1] * b.shape[1])
    return out


@contextmanager
def blas_on_one_thread() -> Iterator[None]:
    """Run BLAS on one thread while the block runs, and let barenet split its large work
    over its own pool meanwhile. Blocks may overlap (two threads predicting at once): they
    share one limit, set by the first to start and lifted, restoring the previous BLAS
    settings (``threadpoolctl``), by the last to end, in whatever order they end."""
    global _controller, _limiter, _one_thread_blocks
    if _settings["workers"] < 2:
        yield
        return
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


class Tuner:
    """Chooses, while a model trains, between all its threads and one.

    Two threads that share a step wait for each other: when another program holds one of
    the cores, every matrix product (BLAS's threads, or barenet's pool) waits for the
    thread that lost its core, and a step can take ten times longer than on one thread.
    So ``fit`` times its steps: it starts by trying ``PROBE`` steps on each count in turn
    and keeps all threads unless one thread is at least ``SLOWER`` times faster on average.
    It tries again when steps on all threads turn twice as slow as they were (the machine
    became busy), every ``RECHECK`` steps while on one thread (it may be idle again) and
    every ``4 * RECHECK`` on all threads (the first probe may have met a quiet moment).

    On an idle machine all threads win and nothing changes but the probes' few
    one-thread steps, at the same steps in every run. The counts differ in the last bits of
    their matrix products, so a run on a busy machine does not repeat bit for bit;
    ``configure(tune=False)`` keeps every step on ``workers`` threads.
    """

    PROBE = 4
    SLOWER = 1.5
    RECHECK = 256
    WINDOW = 16

    def __init__(
        self, layers: Iterable[Any], clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.clock = clock
        self.splitting = _splitting(layers)
        self.all = _settings["workers"]
        self.enabled = bool(_settings["tune"]) and self.all > 1
        self.plan: list[int] = [self.all, 1] * self.PROBE if self.enabled else []
        self.times: dict[int, list[float]] = {self.all: [], 1: []}
        self.count = self.all
        self.since = 0
        self.baseline = 0.0
        self.recent: deque[float] = deque(maxlen=self.WINDOW)
        self._limiter: Any = None

    def __enter__(self) -> Tuner:
        return self

    def __exit__(self, *exc: object) -> None:
        self._use(self.all)

    def step(self, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``work(*args, **kwargs)``, timed, on the thread count the schedule says."""
        if not self.enabled:
            return work(*args, **kwargs)
        count = self.plan[0] if self.plan else self.count
        self._use(count)
        start = self.clock()
        result = work(*args, **kwargs)
        self._record(count, self.clock() - start)
        return result

    def _record(self, count: int, seconds: float) -> None:
        if self.plan:
            self.plan.pop(0)
            self.times[count].append(seconds)
            if not self.plan:
                self._decide()
            return
        self.since += 1
        if count == self.all:
            self.recent.append(seconds)
            slower = len(self.recent) == self.WINDOW and _mean(self.recent) > 2 * self.baseline
            # a probe on a busy machine can pick all threads and take its slow steps as
            # the baseline: look again now and then
            busy = slower or self.since >= 4 * self.RECHECK
        else:
            busy = self.since >= self.RECHECK
        if busy:  # try both counts again
            self.plan = [self.all, 1] * self.PROBE
            self.times = {self.all: [], 1: []}

    def _decide(self) -> None:
        # means, not medians: a step that waits a whole time slice for its other thread is
        # what makes a busy machine slow, and it is what a median would leave out
        many, one = _mean(self.times[self.all]), _mean(self.times[1])
        self.count = 1 if many > self.SLOWER * one else self.all
        self.baseline = many if self.count == self.all else one
        self.since = 0
        self.recent.clear()

    def _use(self, count: int) -> None:
        """Run the next steps on ``count`` threads: BLAS's for a network of dense layers,
        barenet's pool for one inside ``blas_on_one_thread``."""
        global _tuned, _controller
        if self.splitting:
            _tuned = None if count == self.all else count
            return
        if count == self.all:
            if self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None
        elif self._limiter is None:
            _controller = _controller or ThreadpoolController()
            self._limiter = _controller.limit(limits=count, user_api="blas")


def _mean(values: Collection[float]) -> float:
    return sum(values) / len(values)
