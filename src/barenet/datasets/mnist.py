"""MNIST and Fashion-MNIST as uint8 arrays, fetched once and cached.

>>> from barenet.datasets import load_mnist, scale
>>> (x_train, y_train), (x_test, y_test) = load_mnist()   # doctest: +SKIP
>>> x_train.shape, x_train.dtype                           # doctest: +SKIP
((60000, 28, 28), dtype('uint8'))

The arrays are checked against pinned SHA-256 digests whichever source they come from
(see :mod:`barenet.datasets.sources` for the order the sources are tried in).
"""

from __future__ import annotations

import os

import numpy as np

from barenet.datasets.sources import load_arrays
from barenet.datasets.specs import FASHION, FASHION_CLASSES, MNIST, MNIST_CLASSES, get_spec

__all__ = ["FASHION_CLASSES", "MNIST_CLASSES", "load", "load_fashion_mnist", "load_mnist"]

Split = tuple[np.ndarray, np.ndarray]
DataDir = str | os.PathLike[str] | None


def load(name: str, data_dir: DataDir = None) -> tuple[Split, Split]:
    """Load a dataset by name: ``"mnist"`` or ``"fashion"`` (also ``"fashion-mnist"``).

    Parameters
    ----------
    name : str
    data_dir : str or path-like, optional
        A folder holding the four standard IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each optionally ``.gz``), tried after the cache.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Images uint8 ``(N, 28, 28)`` with values 0..255 and labels uint8 ``(N,)``;
        N is 60000 for training and 10000 for test.

    Raises
    ------
    ArgumentError
        For an unknown name.
    DatasetError
        If no source could provide the data; the message lists each source tried.
    """
    arrays = load_arrays(get_spec(name), data_dir)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def load_mnist(data_dir: DataDir = None) -> tuple[Split, Split]:
    """Load MNIST handwritten digits; class ``k`` is the digit ``k`` (see :func:`load`)."""
    return load(MNIST.name, data_dir)


def load_fashion_mnist(data_dir: DataDir = None) -> tuple[Split, Split]:
    """Load Fashion-MNIST; class names are in ``FASHION_CLASSES`` (see :func:`load`)."""
    return load(FASHION.name, data_dir)
