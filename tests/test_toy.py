"""Tests for the toy data sets (spiral, vertical, sine)."""

from __future__ import annotations

import numpy as np
import pytest

from barenet.datasets import sine, spiral, vertical
from barenet.errors import ArgumentError


@pytest.mark.parametrize("make", [spiral, vertical])
def test_classification_shapes_and_dtypes(make):
    x, y = make(50, 4, rng=0)
    assert x.shape == (200, 2) and x.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert np.array_equal(np.bincount(y), [50, 50, 50, 50])


@pytest.mark.parametrize("make", [spiral, vertical])
def test_same_seed_same_points(make):
    a, _ = make(rng=3)
    b, _ = make(rng=np.random.default_rng(3))
    c, _ = make(rng=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_spiral_follows_the_formula():
    x, _ = spiral(100, 3, rng=0)
    r = np.hypot(x[:, 0], x[:, 1])
    # the radius is linspace(0, 1) for every arm, whatever the angular noise
    assert np.allclose(r, np.tile(np.linspace(0, 1, 100), 3), atol=1e-6)
    assert x[0].tolist() == [0.0, 0.0]


def test_vertical_blobs_are_centred():
    x, y = vertical(2000, 3, rng=0)
    for c in range(3):
        centre = x[y == c].mean(axis=0)
        assert np.allclose(centre, [c / 3, 0.5], atol=0.01)


def test_sine_is_one_period():
    x, y = sine(4)
    assert x.shape == y.shape == (4, 1) and x.dtype == y.dtype == np.float32
    assert np.allclose(x.ravel(), [0, 0.25, 0.5, 0.75])
    assert np.allclose(y.ravel(), [0, 1, 0, -1], atol=1e-6)
    noisy, _ = sine(4, noise=0.1, rng=0)
    assert np.array_equal(noisy, x)


@pytest.mark.parametrize(
    "call",
    [
        lambda: spiral(0),
        lambda: spiral(10, classes=0),
        lambda: vertical(2.5),  # type: ignore[arg-type]
        lambda: sine(-1),
        lambda: sine(10, noise=-1.0),
        lambda: spiral(rng="seed"),  # type: ignore[arg-type]
        lambda: spiral(rng=-1),
    ],
)
def test_bad_arguments_are_refused(call):
    with pytest.raises(ArgumentError):
        call()
