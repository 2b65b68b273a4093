"""Ready-made networks for 28x28 images, by name (the command line's ``--model``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from barenet.activations import ReLU
from barenet.errors import ArgumentError
from barenet.layers import Dense, Dropout, Flatten, Layer
from barenet.model import Sequential

__all__ = ["ARCHITECTURES", "build", "mlp"]


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
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ArgumentError(f"dropout must be in [0, 1), got {dropout!r}")
    layers: list[Layer] = [Flatten()]
    fan_in = 1
    for d in input_shape:
        fan_in *= d
    for width in widths:
        layers += [Dense(fan_in, width), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
        fan_in = width
    layers.append(Dense(fan_in, num_classes))
    model = Sequential(layers, seed=seed)
    model.input_shape = tuple(input_shape)
    return model


#: Builders by name: ``build(name, **options)`` calls one.
ARCHITECTURES: dict[str, Callable[..., Sequential]] = {"mlp": mlp}


def build(name: str, **options: Any) -> Sequential:
    """The network called ``name`` (see ``ARCHITECTURES``), built with ``options``."""
    if name not in ARCHITECTURES:
        raise ArgumentError(f"model must be one of {', '.join(ARCHITECTURES)}; got {name!r}")
    return ARCHITECTURES[name](**options)
