"""Data for barenet: MNIST, Fashion-MNIST and small toy sets."""

from barenet.datasets.idx import read_idx, write_idx
from barenet.datasets.toy import sine, spiral, vertical
from barenet.datasets.transforms import one_hot, scale, standardize, train_val_split

__all__ = [
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
