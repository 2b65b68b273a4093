"""Small pre-trained networks shipped with barenet, each reproducible by one command.

>>> from barenet.pretrained import load_pretrained
>>> model = load_pretrained("mnist-mlp")                # doctest: +SKIP
>>> model.metadata["classes"]                           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from barenet.errors import ArgumentError, ModelFileError
from barenet.io import load_model
from barenet.model import Sequential

__all__ = ["PRETRAINED", "Pretrained", "available", "load_pretrained", "path_of"]

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Pretrained:
    """One shipped network: its file (beside this module), the dataset it learned, its
    measured test accuracy and the command that trains it again."""

    file: str
    dataset: str
    test_accuracy: float
    command: str


PRETRAINED: dict[str, Pretrained] = {
    "mnist-mlp": Pretrained(
        file="mnist-mlp.npz",
        dataset="mnist",
        test_accuracy=0.9932,
        command="barenet train --dataset mnist --model mlp --hidden 1024,256 --dropout 0.2 "
        "--epochs 80 --shift 2 --rotate 10 --label-smoothing 0.1 --average-last 5 --seed 0",
    ),
    "fashion-mlp": Pretrained(
        file="fashion-mlp.npz",
        dataset="fashion",
        test_accuracy=0.9065,
        command="barenet train --dataset fashion --model mlp --hidden 1024,256 --dropout 0.2 "
        "--epochs 120 --shift 1 --flip --label-smoothing 0.1 --average-last 8 --seed 0",
    ),
    "mnist-cnn": Pretrained(
        file="mnist-cnn.npz",
        dataset="mnist",
        test_accuracy=0.9964,
        command="barenet train --dataset mnist --model cnn --hidden 128 --dropout 0.3 "
        "--epochs 30 --shift 2 --rotate 10 --label-smoothing 0.1 --average-last 5 --seed 0",
    ),
    "fashion-cnn": Pretrained(
        file="fashion-cnn.npz",
        dataset="fashion",
        test_accuracy=0.9351,
        command="barenet train --dataset fashion --model cnn --channels 32,64,64,128 "
        "--hidden 256 --dropout 0.2 --epochs 30 --shift 2 --flip --label-smoothing 0.1 "
        "--average-last 5 --val-split 0 --seed 0",
    ),
}


def available() -> list[str]:
    """Names of the shipped networks whose file is present."""
    return [name for name, p in PRETRAINED.items() if (HERE / p.file).is_file()]


def path_of(name: str) -> Path:
    """The file of the shipped network ``name``."""
    if name not in PRETRAINED:
        raise ArgumentError(f"pretrained must be one of {', '.join(PRETRAINED)}; got {name!r}")
    path = HERE / PRETRAINED[name].file
    if not path.is_file():
        raise ModelFileError(f"the weights of {name!r} are not installed ({path} is missing)")
    return path


def load_pretrained(name: str) -> Sequential:
    """Load the shipped network ``name`` (see ``PRETRAINED``) as a compiled ``Sequential``."""
    return load_model(path_of(name))
