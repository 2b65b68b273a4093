"""What the doctor shares with ``fit`` and the ``Monitor`` callback: layer names, the
in-place gradient contract, and the share of dead or saturated activations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from barenet.activations import Sigmoid, Tanh
from barenet.layers import Layer


def layer_names(layers: Sequence[Layer]) -> list[str]:
    """Short unique names, ``dense_1``, ``relu_1``, ``dense_2``, ...: the class name in
    lower case and a count per class."""
    counts: dict[str, int] = {}
    names = []
    for layer in layers:
        kind = type(layer).__name__.lower()
        counts[kind] = counts.get(kind, 0) + 1
        names.append(f"{kind}_{counts[kind]}")
    return names


def unbound_gradients(
    layers: Sequence[Layer], flat: np.ndarray, flat_grads: np.ndarray
) -> str | None:
    """A one-line message naming the first layer whose ``params`` or ``grads`` arrays are no
    longer views into the model's flat buffers, or None when all still are.

    A layer that assigns ``self.grads["weight"] = ...`` instead of writing into the array
    leaves the optimizer reading a buffer nobody writes: that layer would never train.
    """
    for name, layer in zip(layer_names(layers), layers, strict=True):
        problem = unbound(layer, flat, flat_grads)
        if problem is not None:
            return f"{name} ({type(layer).__name__}) {problem[0]}; {problem[1]}"
    return None


def unbound(layer: Layer, flat: np.ndarray, flat_grads: np.ndarray) -> tuple[str, str] | None:
    """What ``layer`` broke of the in-place contract, and the fix, or None."""
    for key in layer.params:
        grad = layer.grads.get(key)
        if grad is None or grad.base is not flat_grads:
            return (
                f"replaced self.grads[{key!r}] instead of writing into it, so the optimizer "
                "would never see its gradient",
                f"write in place: self.grads[{key!r}][...] = ... "
                f"(or np.matmul(..., out=self.grads[{key!r}]))",
            )
        if layer.params[key].base is not flat:
            return (
                f"replaced self.params[{key!r}], so the optimizer updates a copy it no longer uses",
                f"change parameters in place: self.params[{key!r}][...] = ...",
            )
    return None


def _units(y: np.ndarray) -> np.ndarray:
    """``y`` as (units, values): features for (N, F), channels for (N, C, H, W)."""
    if y.ndim < 2:
        return y.reshape(1, -1)
    return np.moveaxis(y, 1, 0).reshape(y.shape[1], -1)


def dead_fraction(y: np.ndarray) -> float:
    """Share of the units (features, or channels of images) of a ReLU output ``y`` that
    are zero for every sample of the batch."""
    alive = np.any(_units(y) > 0, axis=1)
    return float(1.0 - alive.mean())


def saturated_fraction(layer: Layer, y: np.ndarray) -> float | None:
    """Share of a sigmoid or tanh output within 0.01 of its bounds (None for other layers),
    where the derivative is below 0.01 and little gradient passes."""
    if isinstance(layer, Sigmoid):
        return float(np.mean((y < 0.01) | (y > 0.99)))
    if isinstance(layer, Tanh):
        return float(np.mean(np.abs(y) > 0.99))
    return None
