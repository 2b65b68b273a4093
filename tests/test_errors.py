"""The shared argument checks: one rule, one message shape, everywhere."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import barenet as bn
from barenet.errors import ArgumentError, BarenetError, StateError, check_int, check_range


@pytest.mark.parametrize(
    ("interval", "inside", "outside"),
    [
        ("[0, 1)", [0, 0.5, np.float32(0.99)], [1, -1e-9, 2]),
        ("(0, 1]", [1e-12, 1, np.int64(1)], [0, 1.0000001]),
        ("[0, 180]", [0, 180, 90.5], [-0.5, 180.01]),
        ("(0, inf)", [1e-300, 1e300], [0, -1, math.inf]),
        ("[0, inf]", [0, math.inf], [-math.inf]),
    ],
)
def test_bounds_follow_the_brackets(interval, inside, outside):
    for value in inside:
        assert check_range("v", value, interval) == float(value)
    for value in outside:
        with pytest.raises(ArgumentError, match=rf"^v must be a number in \{interval[0]}"):
            check_range("v", value, interval)


@pytest.mark.parametrize("value", [True, "0.5", None, [0.5], np.array([0.5]), math.nan, 1j])
def test_anything_but_a_real_number_is_refused_by_name(value):
    with pytest.raises(ArgumentError, match=r"^rate must be a number in \[0, 1\), got "):
        check_range("rate", value, "[0, 1)")


def test_a_malformed_interval_is_a_programming_error():
    for spec in ("0, 1", "[0 1)", "[0, 1, 2]", "[a, b)"):
        with pytest.raises(ValueError):
            check_range("v", 0.5, spec)


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10), st.floats(0, 10))
def test_agrees_with_the_comparison_it_replaces(value, low, width):
    high = low + width
    interval = f"[{low!r}, {high!r})"
    expected = not math.isnan(value) and low <= value < high
    try:
        check_range("v", value, interval)
        got = True
    except ArgumentError:
        got = False
    assert got == expected


def test_check_int_names_the_bound():
    assert check_int("epochs", np.int32(3)) == 3
    with pytest.raises(ArgumentError, match="epochs must be a positive integer, got 0"):
        check_int("epochs", 0)
    with pytest.raises(ArgumentError, match="an integer >= 0, got True"):
        check_int("seed", True, minimum=0)


@pytest.mark.parametrize(
    "layer", [lambda: bn.Dense(3, 2), lambda: bn.Conv2D(1, 2, 3), lambda: bn.BatchNorm(2)]
)
def test_backward_before_forward_is_a_barenet_error(layer):
    with pytest.raises(StateError, match="called before forward") as info:
        layer().backward(np.ones((1, 2)))
    assert isinstance(info.value, BarenetError) and isinstance(info.value, RuntimeError)
