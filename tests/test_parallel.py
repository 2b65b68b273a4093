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
def split_everything(monkeypatch):
    """Split even tiny arrays over 3 workers, so small test arrays take the parallel path."""
    monkeypatch.setattr(parallel, "MIN_SIZE", 1)
    monkeypatch.setattr(parallel, "MIN_PRODUCT", 1)
    monkeypatch.setattr(parallel, "WORKERS", 3)
    with parallel.blas_on_one_thread():
        yield


@pytest.mark.parametrize("length", [1, 2, 3, 7, 100])
def test_parts_cover_the_range_once(split_everything, length):
    slices = parallel.parts(length, 10**9)
    covered = np.concatenate([np.arange(length)[s] for s in slices])
    assert covered.tolist() == list(range(length))
    assert len(slices) == min(3, length) or slices == [slice(None)]


def test_small_work_stays_in_one_call(monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", 4)
    with parallel.blas_on_one_thread():
        assert parallel.parts(100, parallel.MIN_SIZE - 1) == [slice(None)]
        assert len(parallel.parts(100, parallel.MIN_SIZE)) == 4


def test_nothing_is_split_beside_blas_threads(monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", 4)
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
        parallel.for_parts(work, 9, 10**9)
    assert len(done) == 2  # the other parts still ran to the end


def test_work_on_a_pool_thread_does_not_split_again(split_everything):
    seen = []

    def outer(part: slice) -> None:
        seen.append((threading.current_thread().name, parallel.parts(6, 10**9)))
        parallel.for_parts(lambda s: None, 6, 10**9)  # would deadlock if it waited on the pool

    parallel.for_parts(outer, 3, 10**9)
    on_pool = [inner for name, inner in seen if name.startswith("barenet-parallel")]
    assert len(on_pool) == 2 and all(inner == [slice(None)] for inner in on_pool)


def test_matmul_matches_numpy(split_everything):
    a, b = RNG.standard_normal((5, 7)), RNG.standard_normal((7, 11))
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-12)
    out = np.empty((5, 11))
    assert parallel.matmul(a, b, out=out) is out


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
    (lambda: bn.BatchNorm(6), (4, 6, 3, 5)),
    (lambda: bn.BatchNorm(6), (8, 6)),
    (lambda: bn.ReLU(), (4, 6, 3, 5)),
]


@pytest.mark.parametrize(("make", "shape"), LAYERS)
def test_layers_give_the_same_numbers_split_or_not(monkeypatch, make, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(parallel, "WORKERS", 1)
    whole = run_layer(make(), x)
    monkeypatch.setattr(parallel, "MIN_SIZE", 1)
    monkeypatch.setattr(parallel, "MIN_PRODUCT", 1)
    monkeypatch.setattr(parallel, "WORKERS", 3)
    with parallel.blas_on_one_thread():
        split = run_layer(make(), x)
    for a, b in zip(whole, split, strict=True):
        if isinstance(make(), bn.Conv2D):
            # BLAS may pick other kernels for a narrower product: the last bit can differ.
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)


def blas_threads() -> list[int]:
    threads = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    # an empty list would make every comparison below pass without checking anything
    assert threads, "threadpoolctl finds no BLAS library under NumPy"
    return threads


def test_blas_runs_on_one_thread_inside_and_is_restored_after(monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", 2)
    before = blas_threads()
    with parallel.blas_on_one_thread():
        assert set(blas_threads()) <= {1}
    assert blas_threads() == before


@pytest.mark.parametrize(
    ("layers", "limited"),
    [
        ([bn.Flatten(), bn.Dense(16, 3, rng=0)], False),
        ([bn.Conv2D(1, 2, 3, rng=0), bn.Flatten(), bn.Dense(8, 3, rng=0)], True),
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


def test_overlapping_blocks_keep_blas_on_one_thread_until_the_last_ends(monkeypatch):
    """Two threads' blocks may end in either order (a CNN predicting in two requests)."""
    monkeypatch.setattr(parallel, "WORKERS", 2)
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
