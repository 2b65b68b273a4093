"""Turning raw arrays into what a network eats: scaling, standardising, one-hot labels, splits.

Every function returns float32 by default and avoids silent float64 upcasts
(``x / 255.0`` on a uint8 array makes float64: four times the memory of uint8, twice
that of float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from barenet.errors import ArgumentError, check_int, check_range
from barenet.splits import split_off

__all__ = ["one_hot", "scale", "standardize", "train_val_split"]

_CHUNK = 8192  # rows per chunk when computing statistics, to bound temporary memory


def _float_dtype(dtype: DTypeLike, name: str = "dtype") -> np.dtype[Any]:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ArgumentError(f"{name} must be a numpy dtype, got {dtype!r}") from exc
    if dt.kind != "f":
        raise ArgumentError(f"{name} must be a floating dtype, got {dt}")
    return dt


def scale(x: np.ndarray, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Map uint8 pixels 0..255 to floats in [0, 1]: ``x / 255`` computed in ``dtype``.

    Parameters
    ----------
    x : ndarray of uint8, any shape
        Raw pixels, e.g. images ``(N, 28, 28)``.
    dtype : floating dtype
        Result type (float32 by default; the division happens in it, not in float64).

    Returns
    -------
    ndarray, same shape as ``x``, of ``dtype``.
    """
    dt = _float_dtype(dtype)
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ArgumentError(f"scale expects uint8 pixels 0..255, got an array of {x.dtype}")
    out = x.astype(dt)
    out /= dt.type(255)
    return out


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation of all elements, in float64, in chunks."""
    rows = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(-1, 1)
    total = 0.0
    for start in range(0, len(rows), _CHUNK):
        total += float(rows[start : start + _CHUNK].sum(dtype=np.float64))
    mean = total / x.size
    squares = 0.0
    for start in range(0, len(rows), _CHUNK):
        d = rows[start : start + _CHUNK].astype(np.float64) - mean
        squares += float(np.einsum("ij,ij->", d, d))
    return mean, (squares / x.size) ** 0.5


def standardize(
    x: np.ndarray, mean: ArrayLike | None = None, std: ArrayLike | None = None
) -> np.ndarray:
    """Return ``(x - mean) / std`` as float32.

    With ``mean``/``std`` left out they are the mean and standard deviation of all of
    ``x`` (one number each; a constant input gets ``std = 1``). To treat a test set like
    the training set, pass the training statistics, e.g.
    ``standardize(x_test, x_train.mean(), x_train.std())``.

    Parameters
    ----------
    x : ndarray, any numeric dtype, shape (N, ...)
    mean, std : float or array broadcastable to ``x``, optional
        ``std`` must be > 0 everywhere.

    Returns
    -------
    ndarray of float32, same shape as ``x``.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise ArgumentError(f"standardize expects a numeric array, got {x.dtype}")
    if x.size == 0:
        raise ArgumentError("standardize got an empty array")
    if mean is None or std is None:
        m, s = _mean_std(x)
        mean = m if mean is None else mean
        std = (s if s > 0 else 1.0) if std is None else std
    mean_arr = np.asarray(mean, dtype=np.float32)
    std_arr = np.asarray(std, dtype=np.float32)
    if not np.all(np.isfinite(mean_arr)):
        raise ArgumentError(f"mean must be finite, got {mean!r}")
    if not np.all(np.isfinite(std_arr)) or not np.all(std_arr > 0):
        raise ArgumentError(f"std must be finite and > 0, got {std!r}")
    out = x.astype(np.float32)
    out -= mean_arr
    out /= std_arr
    return out


def one_hot(
    y: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = np.float32
) -> np.ndarray:
    """Encode integer class labels as one-hot rows.

    Parameters
    ----------
    y : array of integers in ``[0, num_classes)``, shape (N,) or any shape
    num_classes : int, optional
        Number of classes; default ``y.max() + 1``.
    dtype : dtype
        Result type.

    Returns
    -------
    ndarray of ``dtype``, shape ``y.shape + (num_classes,)``
        ``out[..., k] == 1`` where ``y == k``, else 0.
    """
    labels = np.asarray(y)
    if labels.dtype.kind not in "ui":
        raise ArgumentError(f"one_hot expects integer labels, got an array of {labels.dtype}")
    if num_classes is None:
        if labels.size == 0:
            raise ArgumentError("one_hot needs num_classes when y is empty")
        num_classes = int(labels.max()) + 1
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool):
        raise ArgumentError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if num_classes < 1:
        raise ArgumentError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].flat[0]
        raise ArgumentError(f"labels must lie in [0, {num_classes}), found {int(bad)}")
    out = np.zeros((*labels.shape, int(num_classes)), dtype=dtype)
    np.put_along_axis(out, labels[..., None].astype(np.intp), 1, axis=-1)
    return out


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float | None = None,
    val_size: int | None = None,
    rng: np.random.Generator | int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split ``(x, y)`` at random into a training part and a validation part
    (``split_off(..., pick="random")`` with its arguments checked).

    Parameters
    ----------
    x : ndarray, shape (N, ...)
    y : ndarray, shape (N, ...)
    val_fraction : float in (0, 1), optional
        Share of the samples kept for validation (rounded); 0.1 when neither it nor
        ``val_size`` is given.
    val_size : int, optional
        Number of validation samples (instead of ``val_fraction``).
    rng : numpy.random.Generator, int or None
        Chooses the validation samples; the same seed gives the same split. ``None``
        means a fresh unseeded generator.

    Returns
    -------
    (x_train, y_train), (x_val, y_val)
        Both parts keep the original order of the samples.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ArgumentError(
            f"x and y must have the same number of samples, got shapes {x.shape} and {y.shape}"
        )
    if val_fraction is not None and val_size is not None:
        raise ArgumentError("give val_fraction or val_size, not both")
    if val_size is None:
        frac = check_range("val_fraction", 0.1 if val_fraction is None else val_fraction, "(0, 1)")
        return split_off(x, y, frac, "val_fraction", pick="random", rng=rng)
    size = check_int("val_size", val_size, minimum=0)
    return split_off(x, y, size, "val_size", pick="random", rng=rng)
