"""Accuracy of the shipped networks on test images turned into "pictures".

The first N test images are enlarged (Pillow, bilinear, to 196x196 by default) and
inverted to dark ink on light paper, then read back through ``barenet.preprocess`` (the
path ``barenet predict`` and the web page use) and classified (a picture refused as holding
nothing counts as wrong). Prints a Markdown table:
the accuracy on the untouched 28x28 images beside the accuracy on the pictures.

    .venv/bin/python bench/pictures.py [--count 2000] [--size 196]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from PIL import Image

from barenet.datasets import load, scale
from barenet.errors import ArgumentError
from barenet.metrics import accuracy
from barenet.preprocess import PREPROCESSORS
from barenet.pretrained import PRETRAINED, load_pretrained


def as_picture(image: np.ndarray, size: int) -> np.ndarray:
    """A 28x28 uint8 image enlarged to ``size`` x ``size`` and inverted (dark on light)."""
    big = Image.fromarray(255 - image).resize((size, size), Image.BILINEAR)
    return np.asarray(big)


def prepared(prepare: Callable[[np.ndarray], np.ndarray], picture: np.ndarray) -> np.ndarray:
    """The picture as the network sees it; one refused (nothing found) counts as a blank."""
    try:
        return prepare(picture)
    except ArgumentError:
        return np.zeros((28, 28), np.uint8)


def measure(name: str, count: int, size: int) -> tuple[float, float]:
    """(accuracy on the originals, accuracy on the pictures) for shipped network ``name``."""
    model = load_pretrained(name)
    dataset = PRETRAINED[name].dataset
    (_, _), (x_test, y_test) = load(dataset)
    x, y = x_test[:count], y_test[:count]
    prepare = PREPROCESSORS[dataset]
    pictures = np.stack([prepared(prepare, as_picture(image, size)) for image in x])
    return accuracy(y, model.predict(scale(x))), accuracy(y, model.predict(scale(pictures)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="test images per dataset")
    parser.add_argument("--size", type=int, default=196, help="side of the enlarged picture")
    args = parser.parse_args()
    print(f"first {args.count} test images, enlarged to {args.size}x{args.size}, inverted\n")
    print("| network | originals | pictures |\n|---|---|---|")
    for name in sorted(PRETRAINED):
        original, pictures = measure(name, args.count, args.size)
        print(f"| {name} | {original:.2%} | {pictures:.2%} |")


if __name__ == "__main__":
    main()
