"""What MNIST and Fashion-MNIST must be: shapes, class names and pinned SHA-256 digests.

Every source (cache, a folder, a system copy, a mirror, a package registry) must give
exactly the same bytes, so a digest of each decoded array -- not of any archive -- is
the single test of a good copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from barenet.errors import ArgumentError, DatasetError

__all__ = [
    "ARRAY_NAMES",
    "FASHION",
    "FASHION_CLASSES",
    "IDX_FILES",
    "MNIST",
    "MNIST_CLASSES",
    "SPECS",
    "Arrays",
    "DatasetSpec",
    "digest",
    "get_spec",
    "verify",
]

#: The four arrays of a dataset, in this order everywhere.
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")

#: The standard IDX file name of each array (optionally followed by ``.gz``).
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

#: A dataset's four arrays by name (keys as in ``ARRAY_NAMES``).
Arrays = dict[str, np.ndarray]

MNIST_CLASSES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class DatasetSpec:
    """The facts that identify one dataset.

    Attributes
    ----------
    name : str
        Short name used in file names and on the command line ("mnist", "fashion").
    title : str
        Name for people ("MNIST", "Fashion-MNIST").
    classes : tuple of str
        Class names, indexed by label.
    sha256 : dict
        Array name -> hex SHA-256 of ``np.ascontiguousarray(a).tobytes()``.
    train_size, test_size : int
        Number of images in each split (all images are 28 x 28 uint8).
    """

    name: str
    title: str
    classes: tuple[str, ...]
    sha256: dict[str, str]
    train_size: int = 60000
    test_size: int = 10000

    def shape(self, array_name: str) -> tuple[int, ...]:
        """Expected shape of one of the four arrays."""
        n = self.train_size if array_name.endswith("train") else self.test_size
        return (n, 28, 28) if array_name.startswith("x") else (n,)


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    classes=MNIST_CLASSES,
    sha256={
        "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    },
)

FASHION = DatasetSpec(
    name="fashion",
    title="Fashion-MNIST",
    classes=FASHION_CLASSES,
    sha256={
        "x_train": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
        "y_train": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
        "x_test": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
        "y_test": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
    },
)

#: Every known dataset by short name.
SPECS = {spec.name: spec for spec in (MNIST, FASHION)}
_ALIASES = {"fashion-mnist": "fashion", "fashion_mnist": "fashion"}


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name`` ("mnist" or "fashion"; "fashion-mnist" also works)."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SPECS:
        raise ArgumentError(f"unknown dataset {name!r}; choose one of {', '.join(SPECS)}")
    return SPECS[key]


def digest(array: np.ndarray) -> str:
    """Hex SHA-256 of the array's bytes in C order (the form the pinned digests use)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def verify(spec: DatasetSpec, arrays: Arrays, where: str) -> Arrays:
    """Check that ``arrays`` are exactly the pinned dataset; return them in canonical order.

    Raises
    ------
    DatasetError
        Naming ``where`` the arrays came from and every array that is missing or has the
        wrong dtype, shape or bytes.
    """
    problems = []
    for name in ARRAY_NAMES:
        a = arrays.get(name)
        if a is None:
            problems.append(f"{name} missing")
        elif a.dtype != np.uint8 or a.shape != spec.shape(name):
            problems.append(f"{name} is {a.dtype} {a.shape}, expected uint8 {spec.shape(name)}")
        elif digest(a) != spec.sha256[name]:
            problems.append(f"{name} has the wrong bytes (SHA-256 {digest(a)[:12]}...)")
    if problems:
        raise DatasetError(f"{where}: not the {spec.title} data: {'; '.join(problems)}")
    return {name: np.ascontiguousarray(arrays[name]) for name in ARRAY_NAMES}
