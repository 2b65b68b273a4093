"""Data for barenet: MNIST, Fashion-MNIST and small toy sets.

``load_mnist()`` / ``load_fashion_mnist()`` return uint8 arrays, fetched once from the
first source that has them and cached (see :mod:`barenet.datasets.sources`);
``scale``, ``standardize``, ``one_hot`` and ``train_val_split`` prepare them for a
network; ``spiral``, ``vertical`` and ``sine`` make small toy problems.
"""

from barenet.datasets.cache import cache_dir
from barenet.datasets.idx import read_idx, write_idx
from barenet.datasets.mnist import (
    FASHION_CLASSES,
    MNIST_CLASSES,
    load,
    load_fashion_mnist,
    load_mnist,
)
from barenet.datasets.toy import sine, spiral, vertical
from barenet.datasets.transforms import one_hot, scale, standardize, train_val_split

__all__ = [
    "FASHION_CLASSES",
    "MNIST_CLASSES",
    "cache_dir",
    "load",
    "load_fashion_mnist",
    "load_mnist",
    "one_hot",
    "read_idx",
    "scale",
    "sine",
    "spiral",
    "standardize",
    "train_val_split",
    "vertical",
    "write_idx",
]
