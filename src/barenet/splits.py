"""The validation split, once: ``split_off`` holds samples out of a training set.

It is here, beside ``barenet.model`` rather than in ``barenet.datasets``, so that ``fit``
can use it without importing the dataset loaders.
"""

from __future__ import annotations

import numpy as np

from barenet.errors import ArgumentError
from barenet.init import as_rng

__all__ = ["split_off"]


def split_off(
    x: np.ndarray,
    y: np.ndarray,
    size: float,
    name: str = "size",
    *,
    pick: str = "last",
    rng: np.random.Generator | int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold ``size`` samples of ``(x, y)`` out for validation: every validation split in
    barenet (``fit(validation_split=)``, ``barenet train --val-split``, the web's Learn
    page, ``train_val_split``) is this function.

    Parameters
    ----------
    x, y : ndarray, shape (N, ...)
    size : float or int
        A fraction of N below 1 (rounded to a count) or a whole number of samples.
    name : str
        What the caller calls ``size``, for the message when the split leaves a side empty.
    pick : "last" or "random"
        The last ``size`` samples, unshuffled (as Keras's ``validation_split``; the parts
        are views of ``x`` and ``y``), or a random choice drawn from ``rng``.
    rng : numpy.random.Generator, int or None
        For ``pick="random"``: the same seed gives the same split; None a fresh generator.

    Returns
    -------
    (x_train, y_train), (x_val, y_val)
        Both parts keep the original order of the samples.
    """
    n = len(x)
    n_val = int(size) if size >= 1 else round(n * size)
    if not 1 <= n_val < n:
        raise ArgumentError(
            f"{name}={size:g} leaves {n_val} of {n} samples for validation; each side of "
            "the split needs at least one"
        )
    if pick == "last":
        return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])
    if pick != "random":
        raise ArgumentError(f"pick must be 'last' or 'random', got {pick!r}")
    chosen = np.zeros(n, dtype=bool)
    chosen[as_rng(rng).choice(n, size=n_val, replace=False)] = True
    return (x[~chosen], y[~chosen]), (x[chosen], y[chosen])
