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
    "StateError",
    "TrainingError",
    "check_range",
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


class StateError(BarenetError, RuntimeError):
    """A call made out of order: ``fit`` before ``compile``, ``backward`` before
    ``forward``. The message says what to call first."""


def is_real(value: object) -> bool:
    """True for a real number (Python or NumPy), False for bools, strings, arrays, None."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise ArgumentError unless it is an integer >= minimum
    (and <= maximum, when given; a huge value is described, not printed in full)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        bound = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ArgumentError(f"{name} must be {bound}, got {value!r}")
    if maximum is not None and value > maximum:
        bits = int(value).bit_length()
        shown = f"{int(value):,}" if bits < 128 else f"a {bits}-bit integer"
        raise ArgumentError(f"{name} must be at most {maximum:,}, got {shown}")
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


def _interval(spec: str) -> tuple[float, float, bool, bool]:
    """``"[0, 1)"`` -> (0.0, 1.0, True, False): the bounds and whether each is included."""
    text = spec.strip()
    if text[:1] not in "[(" or text[-1:] not in "])" or text.count(",") != 1:
        raise ValueError(f"not an interval: {spec!r}")
    low, high = (float(part) for part in text[1:-1].split(","))
    return low, high, text[0] == "[", text[-1] == "]"


def check_range(name: str, value: object, interval: str) -> float:
    """Return ``value`` as a float, or raise ArgumentError unless it is a real number in
    ``interval``, written as in mathematics: ``"[0, 1)"``, ``"(0, inf)"``, ``"[0, 180]"``.

    One declarative check for every bounded number an argument takes, so the rule and the
    message read the same everywhere: ``rate must be a number in [0, 1), got 1.5``.
    """
    low, high, low_in, high_in = _interval(interval)
    ok = is_real(value) and not math.isnan(value)  # type: ignore[arg-type]
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (low <= v if low_in else low < v) and (v <= high if high_in else v < high)
    if not ok:
        raise ArgumentError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ArgumentError unless ``value`` is a finite number > 0 (or >= 0)."""
    ok = is_real(value) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ArgumentError(f"{name} must be a finite number {bound}, got {value!r}")
