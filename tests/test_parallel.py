"""barenet.parallel: work split over threads must give the same numbers as one call."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import barenet as bn
from barenet import parallel

RNG = np.random.default_rng(0)


@pytest.fixture
def configured():
    """Put the threading settings back after the test changes them."""
    previous = parallel.settings()
    yield
    parallel.configure(**previous)


@pytest.fixture
def split_everything(configured):
    """Split even tiny arrays over 3 workers, so small test arrays take the parallel path."""
    parallel.configure(3, min_size=1, min_product=1)
    with parallel.blas_on_one_thread():
        yield


@pytest.mark.parametrize("length", [1, 2, 3, 7, 100])
def test_parts_cover_the_range_once(split_everything, length):
    slices = parallel.parts(length, 10**9)
    covered = np.concatenate([np.arange(length)[s] for s in slices])
    assert covered.tolist() == list(range(length))
    assert len(slices) == min(3, length) or slices == [slice(None)]


def test_split_hands_every_index_to_one_kernel_call(split_everything):
    seen = np.zeros(100, dtype=int)

    def count(part: slice, seen: np.ndarray, step: int) -> None:
        seen[part] += step

    parallel.split(count, 100, seen, 1, values=10**9)
    parallel.for_parts(lambda part: count(part, seen, 10), 100, 10**9)  # the older spelling
    assert seen.tolist() == [11] * 100


def test_small_work_stays_in_one_call(configured):
    parallel.configure(4)
    minimum = parallel.settings()["min_size"]
    with parallel.blas_on_one_thread():
        assert parallel.parts(100, minimum - 1) == [slice(None)]
        assert len(parallel.parts(100, minimum)) == 4


def test_nothing_is_split_beside_blas_threads(configured):
    parallel.configure(4)
    assert parallel.parts(100, 10**9) == [slice(None)]
    with parallel.blas_on_one_thread():
        assert len(parallel.parts(100, 10**9)) == 4
    assert parallel.parts(100, 10**9) == [slice(None)]


@pytest.mark.parametrize("failing", [0, 2])
def test_an_error_in_any_part_is_raised(split_everything, failing):
    done, bad = [], parallel.parts(9, 10**9)[failing]

    def work(part: slice) -> None:
        if part == bad:
            raise ValueError("part failed")
        done.append(part)

    with pytest.raises(ValueError, match="part failed"):
        parallel.split(work, 9, values=10**9)
    assert len(done) == 2  # the other parts still ran to the end


def test_work_on_a_pool_thread_does_not_split_again(split_everything):
    seen = []

    def outer(part: slice) -> None:
        seen.append((threading.current_thread().name, parallel.parts(6, 10**9)))
        parallel.split(lambda s: None, 6, values=10**9)  # would deadlock if it waited

    parallel.split(outer, 3, values=10**9)
    on_pool = [inner for name, inner in seen if name.startswith("barenet-parallel")]
    assert len(on_pool) == 2 and all(inner == [slice(None)] for inner in on_pool)


def test_matmul_matches_numpy(split_everything):
    a, b = RNG.standard_normal((5, 7)), RNG.standard_normal((7, 11))
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-12)
    out = np.empty((5, 11))
    assert parallel.matmul(a, b, out=out) is out


def test_configure_checks_its_arguments_and_returns_what_it_replaced(configured):
    before = parallel.settings()
    with pytest.raises(bn.ArgumentError, match="workers must be a positive integer, got 0"):
        parallel.configure(0)
    with pytest.raises(bn.ArgumentError, match="min_size"):
        parallel.configure(min_size=2.5)  # type: ignore[arg-type]
    assert parallel.settings() == before  # a refused call changes nothing
    assert parallel.configure(3, min_product=7) == before
    assert parallel.settings() == {**before, "workers": 3, "min_product": 7}
    assert (parallel.WORKERS, parallel.MIN_PRODUCT) == (3, 7)  # the older names read it


def test_a_larger_pool_takes_effect_after_configure(split_everything):
    parallel.configure(2)
    parallel.split(lambda part: None, 8, values=10**9)  # the pool now has 2 threads
    parallel.configure(4)
    together = threading.Barrier(4, timeout=30)  # broken unless 4 parts run at once

    def wait(part: slice) -> None:
        together.wait()

    parallel.split(wait, 8, values=10**9)


def run_layer(layer, x, training=True):
    y = layer.forward(x.copy(), training=training)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy)
    return [y, dx, *(g.copy() for g in layer.grads.values())]


LAYERS = [
    (lambda: bn.Conv2D(4, 5, 3, padding=1, rng=0), (3, 4, 6, 5)),
    (lambda: bn.Conv2D(3, 2, (2, 3), stride=2, padding=2, rng=0), (2, 3, 7, 8)),
    (lambda: bn.MaxPool2D(2), (3, 4, 6, 6)),
    (lambda: bn.MaxPool2D(3, stride=2), (2, 5, 7, 7)),
    (lambda: bn.AvgPool2D(3, stride=1), (2, 4, 5, 6)),
    (lambda: bn.AvgPool2D(2), (2, 4, 6, 6)),
    (lambda: bn.BatchNorm(6), (4, 6, 3, 5)),
    (lambda: bn.BatchNorm(6), (8, 6)),
    (lambda: bn.ReLU(), (4, 6, 3, 5)),
]


@pytest.mark.parametrize(("make", "shape"), LAYERS)
def test_layers_give_the_same_numbers_split_or_not(configured, make, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    parallel.configure(1)
    whole = run_layer(make(), x)
    parallel.configure(3, min_size=1, min_product=1)
    with parallel.blas_on_one_thread():
        split = run_layer(make(), x)
    for a, b in zip(whole, split, strict=True):
        if isinstance(make(), (bn.Conv2D, bn.BatchNorm)):
            # BLAS may pick other kernels for a narrower product (BatchNorm's sums are
            # matrix-vector products too): the last bit can differ.
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)


def blas_threads() -> list[int]:
    """Threads of NumPy's BLAS (other packages loaded later, such as SciPy, bring their own
    copy, which barenet's products never call)."""
    libs = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    numpy_libs = [lib for lib in libs if "numpy" in lib["filepath"]]
    threads = [lib["num_threads"] for lib in numpy_libs or libs]
    # an empty list would make every comparison below pass without checking anything
    assert threads, "threadpoolctl finds no BLAS library under NumPy"
    return threads


def test_blas_runs_on_one_thread_inside_and_is_restored_after(configured):
    parallel.configure(2)
    before = blas_threads()
    with parallel.blas_on_one_thread():
        assert set(blas_threads()) <= {1}
    assert blas_threads() == before


class WideConv(bn.Conv2D):
    """A user's layer built on an image layer: the policy sees what it is made of."""


@pytest.mark.parametrize(
    ("layers", "limited"),
    [
        ([bn.Flatten(), bn.Dense(16, 3, rng=0)], False),
        ([bn.Conv2D(1, 2, 3, rng=0), bn.Flatten(), bn.Dense(8, 3, rng=0)], True),
        ([WideConv(1, 2, 3, rng=0), bn.Flatten(), bn.Dense(8, 3, rng=0)], True),
        ([bn.Flatten(), bn.Dense(16, 4, rng=0), bn.BatchNorm(4), bn.Dense(4, 3, rng=0)], True),
    ],
)
def test_only_models_with_image_layers_put_blas_on_one_thread(monkeypatch, layers, limited):
    calls = []
    original = parallel.blas_on_one_thread

    def spy():
        calls.append(1)
        return original()

    monkeypatch.setattr(parallel, "blas_on_one_thread", spy)
    model = bn.Sequential(layers)
    model.compile(optimizer="adam", loss="cross_entropy")
    x, y = RNG.random((8, 4, 4)).astype(np.float32), RNG.integers(0, 3, 8)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.predict(x)
    model.evaluate(x, y)
    assert len(calls) == (3 if limited else 0)


def test_overlapping_blocks_keep_blas_on_one_thread_until_the_last_ends(configured):
    """Two threads' blocks may end in either order (a CNN predicting in two requests)."""
    parallel.configure(2)
    before = blas_threads()
    first, second = parallel.blas_on_one_thread(), parallel.blas_on_one_thread()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert set(blas_threads()) <= {1}
    assert len(parallel.parts(100, 10**9)) == 2
    second.__exit__(None, None, None)
    assert blas_threads() == before
    assert parallel.parts(100, 10**9) == [slice(None)]


def test_one_worker_leaves_blas_alone(configured):
    parallel.configure(1)
    before = blas_threads()
    with parallel.blas_on_one_thread():
        assert blas_threads() == before
        assert parallel.parts(100, 10**9) == [slice(None)]


class FakeClock:
    """A clock the test moves: each step of work advances it by what the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_steps(tuner, clock, steps, seconds):
    """``steps`` steps through ``tuner``; ``seconds(threads)`` is what one step costs on
    that many threads. Returns the thread count each step ran on."""
    used = []

    def work():
        threads = parallel._tuned or parallel.settings()["workers"]
        if not tuner.splitting:
            threads = blas_threads()[0]
        used.append(threads)
        clock.now += seconds(threads)

    for _ in range(steps):
        tuner.step(work)
    return used


DENSE = [bn.Dense(4, 3, rng=0)]
IMAGES = [bn.Conv2D(1, 2, 3, rng=0)]


@pytest.mark.parametrize("layers", [DENSE, IMAGES], ids=["blas", "pool"])
def test_a_busy_machine_makes_training_drop_to_one_thread(configured, layers):
    parallel.configure(2, tune=True)
    clock = FakeClock()
    with parallel.threads_for(layers), parallel.Tuner(layers, clock) as tuner:
        used = run_steps(tuner, clock, 20, lambda threads: 0.010 if threads > 1 else 0.002)
    assert used[:8] == [2, 1] * 4  # the probe, then one thread
    assert set(used[8:]) == {1}
    assert parallel._tuned is None  # put back when training ends
    if layers is DENSE:
        assert blas_threads() == [2]


@pytest.mark.parametrize("layers", [DENSE, IMAGES], ids=["blas", "pool"])
def test_an_idle_machine_keeps_every_thread(configured, layers):
    parallel.configure(2, tune=True)
    clock = FakeClock()
    with parallel.threads_for(layers), parallel.Tuner(layers, clock) as tuner:
        # one thread a little faster (small work) is not enough to leave the cores idle
        used = run_steps(tuner, clock, 300, lambda threads: 0.0012 if threads > 1 else 0.001)
    assert used[8:] == [2] * 292


def test_training_tries_again_when_the_machine_becomes_busy_or_idle(configured):
    parallel.configure(2, tune=True)
    clock = FakeClock()
    with parallel.Tuner(IMAGES, clock) as tuner:
        fast = run_steps(tuner, clock, 30, lambda threads: 0.001 if threads > 1 else 0.002)
        assert set(fast[8:]) == {2}
        busy = run_steps(tuner, clock, 30, lambda threads: 0.010 if threads > 1 else 0.002)
        # slow steps until they fill most of the window, then a new probe, then one thread
        start = busy.index(1) - 1
        assert 1 <= start <= parallel.Tuner.WINDOW
        assert busy[start : start + 8] == [2, 1] * 4 and set(busy[start + 8 :]) == {1}
        idle = run_steps(tuner, clock, parallel.Tuner.RECHECK + 20, lambda t: 0.001 * (3 - t))
        assert idle[-1] == 2  # a recheck on one thread found two faster again


def test_tune_false_keeps_every_step_on_the_configured_threads(configured):
    parallel.configure(2, tune=False)
    clock = FakeClock()
    with parallel.Tuner(IMAGES, clock) as tuner:
        used = run_steps(tuner, clock, 20, lambda threads: 0.010 if threads > 1 else 0.001)
    assert used == [2] * 20
    with pytest.raises(bn.ArgumentError, match="tune must be True or False"):
        parallel.configure(tune="yes")


@pytest.mark.parametrize("layers", [DENSE, IMAGES], ids=["blas", "pool"])
def test_fit_with_the_tuner_on_trains_and_puts_the_threads_back(configured, layers):
    parallel.configure(2, tune=True)
    before = blas_threads()
    model = bn.Sequential([*layers, bn.Flatten(), bn.Dense(3 if layers is DENSE else 8, 2)])
    model.compile(optimizer=bn.Adam(lr=0.01))
    shape = (64, 4) if layers is DENSE else (64, 1, 4, 4)
    x = RNG.standard_normal(shape).astype(np.float32)
    model.fit(x, (x.reshape(64, -1).sum(axis=1) > 0).astype(int), epochs=3, batch_size=4)
    assert model.history.history["loss"][-1] < model.history.history["loss"][0]
    assert blas_threads() == before and parallel._tuned is None


def test_a_probe_that_met_a_quiet_moment_is_checked_again(configured):
    """The first probe saw two threads nearly as fast as one; afterwards they are 2.3x
    slower, yet not twice as slow as the probe's own steps. The periodic check finds it."""
    parallel.configure(2, tune=True)
    clock = FakeClock()
    with parallel.Tuner(IMAGES, clock) as tuner:
        first = run_steps(tuner, clock, 8, lambda threads: 0.004 if threads > 1 else 0.003)
        assert first == [2, 1] * 4
        later = run_steps(
            tuner, clock, 4 * parallel.Tuner.RECHECK + 20, lambda t: 0.007 if t > 1 else 0.003
        )
    assert set(later[: 4 * parallel.Tuner.RECHECK - 1]) == {2}
    assert later[-1] == 1
