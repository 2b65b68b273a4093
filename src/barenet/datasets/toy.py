"""Small two-dimensional toy data sets from the nnfs course: spiral, vertical, sine.

They are tiny, fast to make, and hard enough to show the difference between a linear
model and a network with a hidden layer. Each function takes ``rng`` (a
``numpy.random.Generator``, an integer seed, or ``None`` for a fresh unseeded
generator), so the same seed always gives the same points.
"""

from __future__ import annotations

import numpy as np

from barenet.errors import check_int, check_range
from barenet.init import as_rng

__all__ = ["sine", "spiral", "vertical"]


def spiral(
    samples: int = 100, classes: int = 3, *, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one arm per class.

    For class ``c``: ``r = linspace(0, 1)``, ``t = linspace(4c, 4(c+1)) + 0.2 * noise``,
    and the points are ``(r sin(2.5 t), r cos(2.5 t))``.

    Parameters
    ----------
    samples : int
        Points per class.
    classes : int
        Number of arms (classes).
    rng : numpy.random.Generator, int or None
        Source of the angular noise; ``None`` means a fresh unseeded generator.

    Returns
    -------
    x : ndarray, float32, shape (samples * classes, 2)
    y : ndarray, int64, shape (samples * classes,)
        Class index of each point, in blocks of ``samples``.
    """
    check_int("samples", samples)
    check_int("classes", classes)
    gen = as_rng(rng)
    x = np.empty((samples * classes, 2), dtype=np.float64)
    y = np.repeat(np.arange(classes, dtype=np.int64), samples)
    r = np.linspace(0.0, 1.0, samples)
    for c in range(classes):
        t = np.linspace(c * 4.0, (c + 1) * 4.0, samples) + gen.standard_normal(samples) * 0.2
        rows = slice(c * samples, (c + 1) * samples)
        x[rows, 0] = r * np.sin(t * 2.5)
        x[rows, 1] = r * np.cos(t * 2.5)
    return x.astype(np.float32), y


def vertical(
    samples: int = 100, classes: int = 3, *, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical blobs side by side: class ``c`` is centred at ``(c / 3, 0.5)``, sd 0.1.

    Parameters
    ----------
    samples : int
        Points per class.
    classes : int
        Number of blobs (classes).
    rng : numpy.random.Generator, int or None
        Source of the noise; ``None`` means a fresh unseeded generator.

    Returns
    -------
    x : ndarray, float32, shape (samples * classes, 2)
    y : ndarray, int64, shape (samples * classes,)
    """
    check_int("samples", samples)
    check_int("classes", classes)
    gen = as_rng(rng)
    x = np.empty((samples * classes, 2), dtype=np.float64)
    y = np.repeat(np.arange(classes, dtype=np.int64), samples)
    for c in range(classes):
        rows = slice(c * samples, (c + 1) * samples)
        x[rows, 0] = gen.standard_normal(samples) * 0.1 + c / 3
        x[rows, 1] = gen.standard_normal(samples) * 0.1 + 0.5
    return x.astype(np.float32), y


def sine(
    samples: int = 1000, *, noise: float = 0.0, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One period of a sine wave, for regression: ``y = sin(2 pi x)``, ``x`` in [0, 1).

    Parameters
    ----------
    samples : int
        Number of points, evenly spaced: ``x = arange(samples) / samples``.
    noise : float
        Standard deviation of Gaussian noise added to ``y`` (0 gives the exact curve,
        as in the nnfs course).
    rng : numpy.random.Generator, int or None
        Source of the noise; only used when ``noise > 0``.

    Returns
    -------
    x : ndarray, float32, shape (samples, 1)
    y : ndarray, float32, shape (samples, 1)
    """
    check_int("samples", samples)
    noise = check_range("noise", noise, "[0, inf)")
    x = np.arange(samples, dtype=np.float64).reshape(-1, 1) / samples
    y = np.sin(2 * np.pi * x)
    if noise > 0:
        y = y + as_rng(rng).standard_normal(y.shape) * noise
    return x.astype(np.float32), y.astype(np.float32)
