"""Ready-made networks for 28x28 images, by name (the command line's ``--model``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from barenet.activations import ReLU
from barenet.conv import Conv2D, MaxPool2D
from barenet.errors import ArgumentError, check_range
from barenet.layers import Dense, Dropout, Flatten, Layer
from barenet.model import Sequential
from barenet.normalization import BatchNorm

__all__ = ["ARCHITECTURES", "build", "cnn", "mlp"]


def mlp(
    hidden: Sequence[int] = (512, 256),
    *,
    dropout: float = 0.2,
    input_shape: tuple[int, ...] = (28, 28),
    num_classes: int = 10,
    seed: int | None = None,
) -> Sequential:
    """A multi-layer perceptron: ``Flatten, [Dense, ReLU, Dropout] * len(hidden), Dense``.

    Parameters
    ----------
    hidden : sequence of int
        Widths of the hidden layers, e.g. ``(512, 256)`` for 784-512-256-10.
    dropout : float in [0, 1)
        Dropout rate after each hidden layer (0 leaves the Dropout layers out).
    input_shape : tuple of int
        Shape of one sample; it is flattened first.
    num_classes : int
        Width of the output (logits; train with ``"cross_entropy"``).
    seed : int, optional
        Seed of the initial weights.
    """
    widths = list(hidden)
    for w in widths:
        if not isinstance(w, int) or isinstance(w, bool) or w < 1:
            raise ArgumentError(f"hidden must hold positive integers, got {list(hidden)!r}")
    dropout = check_range("dropout", dropout, "[0, 1)")
    layers: list[Layer] = [Flatten()]
    return _with_head(
        layers, math.prod(input_shape), widths, dropout, num_classes, seed, input_shape
    )


def _with_head(
    layers: list[Layer],
    fan_in: int,
    widths: Sequence[int],
    dropout: float,
    num_classes: int,
    seed: int | None,
    input_shape: Sequence[int],
) -> Sequential:
    """Append Dense-ReLU(-Dropout) blocks and the output layer; build the model."""
    for width in widths:
        layers += [Dense(fan_in, width), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
        fan_in = width
    layers.append(Dense(fan_in, num_classes))
    model = Sequential(layers, seed=seed)
    model.input_shape = tuple(input_shape)
    return model


def cnn(
    channels: Sequence[int] = (32, 64, 128),
    hidden: Sequence[int] = (128,),
    *,
    dropout: float = 0.3,
    input_shape: tuple[int, ...] = (28, 28),
    num_classes: int = 10,
    seed: int | None = None,
) -> Sequential:
    """A convolutional network: ``[Conv2D 3x3 'same', BatchNorm, ReLU]`` per entry of
    ``channels``, a 2x2 ``MaxPool2D`` closing each run of equal widths, then
    ``Flatten, [Dense, ReLU, Dropout] * len(hidden), Dense``. The pool comes before its
    ReLU (Conv, BatchNorm, MaxPool2D, ReLU): the same function, as max pooling and ReLU
    commute, for a quarter of the ReLU's work. Model files of the other order still load.

    The default, for 28x28 images: conv 32 - pool - conv 64 - pool - conv 128 - pool
    (128x3x3) - dense 128 - dense 10 (241,994 parameters).

    Parameters
    ----------
    channels : sequence of int
        Output channels of the convolutions, in order.
    hidden : sequence of int
        Widths of the dense hidden layers after the convolutions.
    dropout : float in [0, 1)
        Dropout rate after each dense hidden layer (0 leaves the Dropout layers out).
    input_shape : tuple of int
        ``(H, W)`` (one channel) or ``(C, H, W)``.
    num_classes : int
        Width of the output (logits; train with ``"cross_entropy"``).
    seed : int, optional
        Seed of the initial weights.
    """
    widths, dense = list(channels), list(hidden)
    for name, values in (("channels", widths), ("hidden", dense)):
        if not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ArgumentError(f"{name} must hold positive integers, got {values!r}")
    dropout = check_range("dropout", dropout, "[0, 1)")
    if len(input_shape) not in (2, 3):
        raise ArgumentError(f"input_shape must be (H, W) or (C, H, W), got {input_shape!r}")
    shape = tuple(input_shape) if len(input_shape) == 3 else (1, *input_shape)
    layers: list[Layer] = []
    for i, width in enumerate(widths):
        layers += [Conv2D(shape[0], width, 3, padding="same"), BatchNorm(width)]
        shape = (width, *shape[1:])
        if i + 1 == len(widths) or widths[i + 1] != width:
            if min(shape[1:]) < 2:
                raise ArgumentError(f"input_shape {input_shape!r} is too small for {widths!r}")
            # Max pooling and ReLU commute exactly; pooling first leaves ReLU a quarter.
            layers.append(MaxPool2D(2))
            shape = (width, shape[1] // 2, shape[2] // 2)
        layers.append(ReLU())
    layers.append(Flatten())
    fan_in = shape[0] * shape[1] * shape[2]
    return _with_head(layers, fan_in, dense, dropout, num_classes, seed, input_shape)


#: Builders by name: ``build(name, **options)`` calls one.
ARCHITECTURES: dict[str, Callable[..., Sequential]] = {"mlp": mlp, "cnn": cnn}


def build(name: str, **options: Any) -> Sequential:
    """The network called ``name`` (see ``ARCHITECTURES``), built with ``options``."""
    if name not in ARCHITECTURES:
        raise ArgumentError(f"model must be one of {', '.join(ARCHITECTURES)}; got {name!r}")
    return ARCHITECTURES[name](**options)
