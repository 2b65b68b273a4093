"""barenet's exceptions: one base class, so a program (or the CLI) can catch them all."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "ArgumentError",
    "BarenetError",
    "DatasetError",
    "ModelFileError",
    "TrainingError",
]


class BarenetError(Exception):
    """Base of every error barenet raises on purpose; its message is meant for a person."""


class ArgumentError(BarenetError, ValueError):
    """A bad argument: the message names the argument and the value received."""


class DatasetError(BarenetError):
    """A dataset could not be read, verified or obtained."""


class ModelFileError(BarenetError):
    """A model file is missing, truncated, foreign, or does not match its config."""


class TrainingError(BarenetError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


def is_real(value: object) -> bool:
    """True for a real number (Python or NumPy), False for bools, strings, arrays, None."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ArgumentError unless it is an integer >= minimum."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        bound = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ArgumentError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def check_float_dtype(name: str, value: object) -> np.dtype[Any]:
    """Return ``value`` as a dtype, or raise ArgumentError unless it is float32 or float64
    (the dtypes layers compute in; anything else, read from a file, could be any size)."""
    try:
        dtype = np.dtype(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        dtype = None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ArgumentError(f"{name} must be float32 or float64, got {value!r}")
    return dtype


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ArgumentError unless ``value`` is a finite number > 0 (or >= 0)."""
    ok = is_real(value) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ArgumentError(f"{name} must be a finite number {bound}, got {value!r}")
