"""The checks ``fit``, ``evaluate``, ``predict`` and the training step run on their data.

Bad data gets an ``ArgumentError`` naming the argument and what it holds, before any
layer sees it, rather than a NumPy error from deep inside a layer or a NaN loss later.
The loss adds its own target check (``Loss.check_targets``: class ids in range, say).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from barenet.errors import ArgumentError, BarenetError
from barenet.layers import Layer

__all__ = [
    "as_array",
    "check_inputs",
    "check_targets",
    "output_width",
    "user_stacklevel",
    "warn_if_unscaled",
]

_PACKAGE = str(Path(__file__).resolve().parent)

#: Inputs reaching beyond this (in absolute value) are called unscaled, by fit's warning
#: and by the doctor alike: networks train best on inputs of about [-1, 1].
UNSCALED = 10.0


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by this function's caller point at
    the first line outside barenet: the user's call of ``fit``, not barenet's insides."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
        _PACKAGE
    ):
        frame = frame.f_back
        level += 1
    return level


def as_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)``, or ArgumentError when NumPy cannot make one array of it."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:
        raise ArgumentError(
            f"{name} must be an array of numbers, got a {type(value).__name__} NumPy cannot "
            f"make one array of ({e})"
        ) from None


def peak_magnitude(x: np.ndarray) -> float:
    """The largest ``|x|`` (0 for an empty ``x``; NaN or infinite when ``x`` holds such a
    value), from a min and a max: no ``abs`` copy of ``x``."""
    return max(-float(x.min()), float(x.max())) if x.size else 0.0


def check_inputs(
    x: Any,
    name: str,
    dtype: np.dtype,
    sample_shape: tuple[int, ...] | None,
    *,
    warn: bool = False,
    finite: bool = True,
) -> np.ndarray:
    """``x`` as a contiguous, finite array of ``dtype`` holding a batch of samples of
    ``sample_shape`` (any shape when None). ``warn`` (fit) also warns about unscaled
    inputs. ``finite=False`` skips the pass that looks for NaN and infinity, for callers
    that check their outputs instead and come back here only when those are not finite
    (``Sequential.predict_proba``): a NaN input gives a NaN output."""
    if (
        not finite
        and type(x) is np.ndarray
        and x.dtype == dtype
        and x.flags.c_contiguous
        and x.ndim >= 2
        and x.size
        and (sample_shape is None or x.shape[1:] == sample_shape)
    ):
        return x  # already what the checks below would make of it (a batch-of-one fast path)
    xa = as_array(name, x)
    if xa.dtype.kind not in "iuf":
        raise ArgumentError(
            f"{name} must hold real numbers (integers or floats), got dtype {xa.dtype}"
        )
    if xa.ndim < 2 or xa.size == 0:
        raise ArgumentError(
            f"{name} must be a non-empty batch of shape (N, ...), got shape {xa.shape}"
        )
    if sample_shape is not None and xa.shape[1:] != sample_shape:
        raise ArgumentError(f"{name} must have samples of shape {sample_shape}, got {xa.shape[1:]}")
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: inf
        out = np.ascontiguousarray(xa, dtype=dtype)
    if finite and not math.isfinite(peak_magnitude(out)):
        if xa.dtype.kind == "f" and not np.isfinite(xa).all():
            raise ArgumentError(f"{name} contains NaN or infinite values")
        raise ArgumentError(f"{name} holds numbers too large for {dtype}")
    if warn:
        warn_if_unscaled(xa.dtype, out)
    return out


def check_targets(y: Any, name: str, samples: int, x_name: str = "x") -> np.ndarray:
    """``y`` as an array of finite numbers with one target per sample (bools as 0/1)."""
    ya = as_array(name, y)
    if ya.dtype.kind not in "biuf":
        raise ArgumentError(f"{name} must hold numbers, got dtype {ya.dtype}")
    if ya.ndim not in (1, 2):
        raise ArgumentError(
            f"{name} must hold one target per sample, shape (N,) or (N, K), got shape {ya.shape}"
        )
    if len(ya) != samples:
        raise ArgumentError(
            f"{x_name} and {name} differ in length: {samples} samples vs {len(ya)} targets"
        )
    if ya.dtype.kind == "f" and not np.isfinite(ya).all():
        raise ArgumentError(f"{name} contains NaN or infinite values")
    return ya.astype(np.uint8) if ya.dtype.kind == "b" else ya


def warn_if_unscaled(dtype: np.dtype, x: np.ndarray) -> None:
    """Warn about integer or large inputs, judging by the first 10,000 samples: enough
    to see the scale, and cheap on every fit call."""
    stacklevel = user_stacklevel()
    if dtype.kind in "iu":
        warnings.warn(
            f"inputs are integers ({dtype}); scale them first, e.g. x / 255 for pixels",
            UserWarning,
            stacklevel=stacklevel,
        )
        return
    sample = x[:10_000]
    peak = peak_magnitude(sample)
    if peak > UNSCALED:
        warnings.warn(
            f"inputs reach |x| = {peak:.4g}; networks train best on inputs scaled to about "
            "[-1, 1] (e.g. pixels / 255, or standardised features)",
            UserWarning,
            stacklevel=stacklevel,
        )


def _says_nothing_of_its_shape(layer: Layer) -> bool:
    """True for a layer defined outside barenet that keeps ``Layer.output_shape`` (which
    assumes the shape is unchanged): its real output width is unknown."""
    cls = type(layer)
    return cls.output_shape is Layer.output_shape and not cls.__module__.startswith("barenet.")


def output_width(layers: Sequence[Layer], shape: tuple[int, ...] | None) -> int | None:
    """Width of the output of ``layers`` for samples of ``shape``, or None when it is
    unknown or not a flat vector (what a target check compares class ids against)."""
    if shape is None:
        return None
    try:
        for layer in layers:
            if _says_nothing_of_its_shape(layer):
                return None
            shape = layer.output_shape(shape)
    except (BarenetError, ValueError, TypeError, IndexError):
        return None  # samples these layers cannot take: they say so on the way
    return shape[0] if len(shape) == 1 else None
