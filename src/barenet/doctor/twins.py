"""Copies of the model the doctor may change, and forward passes it can replay exactly
(every layer's random generator reseeded from the doctor's seed and the layer's index)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.layers import Layer

if TYPE_CHECKING:
    from barenet.model import Sequential


def clone(model: Sequential, dtype: Any = None) -> Sequential:
    """A deep copy of the model's layers and optimizer; with ``dtype``, every floating array
    a layer holds (parameters, running statistics) cast to it."""
    twin = copy.copy(model)
    twin.layers = copy.deepcopy(model.layers)
    twin.optimizer = copy.deepcopy(model.optimizer)
    twin._flat = twin._flat_grads = None
    if dtype is not None:
        for layer in twin.layers:
            _cast(layer, dtype)
    return twin


def _cast(layer: Layer, dtype: Any) -> None:
    for key, value in vars(layer).items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            setattr(layer, key, value.astype(dtype))
        elif isinstance(value, np.dtype) and value.kind == "f":
            setattr(layer, key, np.dtype(dtype))
    layer.params = {k: np.array(v, dtype=dtype) for k, v in layer.params.items()}
    layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}


def reseed(layer: Layer, seed: int, index: int) -> None:
    layer.reseed(np.random.default_rng([seed, index]))


def layer_inputs(layers: Sequence[Layer], x: np.ndarray, seed: int) -> list[np.ndarray]:
    """The input of every layer and the last output, in training mode (Dropout reseeded)."""
    seen = [x]
    for i, layer in enumerate(layers):
        reseed(layer, seed, i)
        seen.append(layer.forward(seen[-1], training=True))
    return seen
