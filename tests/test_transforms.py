"""Tests for scale, standardize, one_hot and train_val_split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from barenet.datasets.transforms import one_hot, scale, standardize, train_val_split
from barenet.errors import ArgumentError
from barenet.splits import split_off


def test_scale_maps_uint8_to_unit_interval_in_float32():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    out = scale(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.tolist() == [[0.0, np.float32(51) / np.float32(255), 1.0]]
    assert scale(x, np.float64).dtype == np.float64


@pytest.mark.parametrize("bad", [np.zeros(3, np.float32), np.zeros(3, np.int64)])
def test_scale_refuses_non_uint8(bad):
    with pytest.raises(ArgumentError, match="uint8"):
        scale(bad)


def test_scale_refuses_integer_dtype():
    with pytest.raises(ArgumentError, match="floating"):
        scale(np.zeros(3, np.uint8), dtype=np.int32)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20)))
def test_standardize_gives_zero_mean_unit_std(x):
    out = standardize(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert abs(float(out.mean(dtype=np.float64))) < 1e-4
    expected_std = 1.0 if x.std() > 0 else 0.0
    assert abs(float(out.std(dtype=np.float64)) - expected_std) < 1e-3


def test_standardize_with_given_statistics():
    x = np.array([0, 2, 4], dtype=np.uint8)
    assert standardize(x, mean=2.0, std=2.0).tolist() == [-1.0, 0.0, 1.0]
    per_column = standardize(np.array([[1.0, 10.0], [3.0, 30.0]]), [2, 20], [1, 10])
    assert per_column.tolist() == [[-1.0, -1.0], [1.0, 1.0]]


@pytest.mark.parametrize("std", [0.0, -1.0, float("nan")])
def test_standardize_refuses_bad_std(std):
    with pytest.raises(ArgumentError, match="std"):
        standardize(np.ones(3), mean=0.0, std=std)


def test_standardize_refuses_empty_and_non_numeric():
    with pytest.raises(ArgumentError, match="empty"):
        standardize(np.zeros(0))
    with pytest.raises(ArgumentError, match="numeric"):
        standardize(np.array(["a"]))


def test_one_hot_encodes_labels():
    out = one_hot(np.array([2, 0, 1]), 4)
    assert out.dtype == np.float32
    assert out.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    assert one_hot([1, 1]).shape == (2, 2)
    assert one_hot(np.array([[0], [1]], dtype=np.uint8), 3, dtype=np.int64).shape == (2, 1, 3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=50))
def test_one_hot_argmax_recovers_labels(labels):
    out = one_hot(np.array(labels), 10)
    assert out.sum() == len(labels)
    assert out.argmax(axis=1).tolist() == labels


@pytest.mark.parametrize(
    ("y", "k", "match"),
    [
        (np.array([0.0, 1.0]), None, "integer labels"),
        (np.array([0, 3]), 3, r"\[0, 3\), found 3"),
        (np.array([-1, 0]), 2, "found -1"),
        (np.array([], dtype=np.int64), None, "num_classes"),
        (np.array([0]), 0, "num_classes"),
        (np.array([0]), 2.0, "num_classes"),
    ],
)
def test_one_hot_errors(y, k, match):
    with pytest.raises(ArgumentError, match=match):
        one_hot(y, k)


def test_split_is_seeded_disjoint_and_complete():
    x = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    (xt, yt), (xv, yv) = train_val_split(x, y, rng=0)
    assert len(yv) == 5 and len(yt) == 45
    assert sorted(np.concatenate([yt, yv]).tolist()) == list(range(50))
    assert np.array_equal(xt[:, 0] // 2, yt) and np.array_equal(xv[:, 0] // 2, yv)
    (_, yt2), (_, yv2) = train_val_split(x, y, rng=np.random.default_rng(0))
    assert np.array_equal(yv, yv2) and np.array_equal(yt, yt2)
    (_, _), (_, yv3) = train_val_split(x, y, rng=1)
    assert not np.array_equal(yv, yv3)
    (_, _), (_, yv4) = train_val_split(x, y, val_size=7, rng=0)
    assert len(yv4) == 7
    (_, _), (_, yv5) = train_val_split(x, y, val_fraction=0.5, rng=0)
    assert len(yv5) == 25


@pytest.mark.parametrize(
    "kwargs",
    [
        {"val_fraction": 0.0},
        {"val_fraction": 1.0},
        {"val_size": 0},
        {"val_size": 10},
        {"val_size": 2.5},
        {"val_fraction": 0.1, "val_size": 2},
    ],
)
def test_split_errors(kwargs):
    with pytest.raises(ArgumentError):
        train_val_split(np.zeros((10, 2)), np.zeros(10), rng=0, **kwargs)


def test_split_refuses_mismatched_lengths():
    with pytest.raises(ArgumentError, match="same number of samples"):
        train_val_split(np.zeros((10, 2)), np.zeros(9), rng=0)


def test_split_off_holds_out_the_last_samples_as_views():
    """fit(validation_split=), barenet train and the web all take the last samples."""
    x, y = np.arange(40).reshape(20, 2), np.arange(20)
    (xt, yt), (xv, yv) = split_off(x, y, 0.25)
    assert yv.tolist() == list(range(15, 20)) and yt.tolist() == list(range(15))
    assert np.shares_memory(xv, x) and np.shares_memory(xt, x)  # no copy
    (_, _), (_, yv) = split_off(x, y, 3)  # a count instead of a fraction
    assert yv.tolist() == [17, 18, 19]


def test_split_off_at_random_is_train_val_split():
    x, y = np.arange(100).reshape(50, 2), np.arange(50)
    (_, yt), (_, yv) = split_off(x, y, 0.2, pick="random", rng=3)
    (_, yt2), (_, yv2) = train_val_split(x, y, val_fraction=0.2, rng=3)
    assert np.array_equal(yv, yv2) and np.array_equal(yt, yt2)
    assert yv.tolist() == sorted(yv.tolist()) and yv.tolist() != list(range(40, 50))


@pytest.mark.parametrize(("size", "kept"), [(0.01, 0), (20, 20), (0.99, 20)])
def test_split_off_names_the_callers_argument_when_a_side_is_empty(size, kept):
    with pytest.raises(ArgumentError, match=rf"^val_split={size:g} leaves {kept} of 20 samples"):
        split_off(np.zeros((20, 2)), np.zeros(20), size, "val_split")
