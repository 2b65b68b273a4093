"""``input_gradient``: how each input value pushes a class's score up or down.

The gradient of a class's *logit* (the output before a trailing Softmax or Sigmoid:
probabilities saturate, logits do not) with respect to the input, through the layers'
own ``backward`` in inference mode. ``Sequential.input_gradient`` is the public face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.activations import Sigmoid, Softmax
from barenet.data_checks import as_array
from barenet.errors import ArgumentError

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = ["input_gradient"]


def _targets(target: Any, n: int) -> np.ndarray:
    """``target`` as n class ids, or ArgumentError."""
    scalar = isinstance(target, (int, np.integer)) and not isinstance(target, bool)
    ta = np.full(n, target) if scalar else as_array("target", target)
    if ta.dtype.kind not in "iu" or ta.shape != (n,):
        raise ArgumentError(
            f"target must be a class id or {n} class ids (N,), got "
            f"{ta.dtype} values of shape {ta.shape}"
        )
    return ta


def input_gradient(model: Sequential, x: np.ndarray, target: Any) -> np.ndarray:
    """``d logit[n, target[n]] / d x[n]`` for a checked batch ``x``; the weights and
    their gradient buffers are left as they were. See ``Sequential.input_gradient``."""
    ta = _targets(target, len(x))
    layers = model.layers
    tail = bool(layers) and isinstance(layers[-1], (Softmax, Sigmoid))
    body = layers[:-1] if tail else layers
    saved = [{k: g.copy() for k, g in layer.grads.items()} for layer in body]
    try:
        with model._threads(), np.errstate(over="ignore", invalid="ignore"):
            out = x
            for layer in body:
                out = layer.forward(out, training=False)
            if out.ndim != 2:
                raise ArgumentError(f"the model's outputs are not class scores: {out.shape}")
            if ta.min() < 0 or ta.max() >= out.shape[1]:
                raise ArgumentError(
                    f"target must be class ids in [0, {out.shape[1]}), got {ta.tolist()}"
                )
            grad = np.zeros_like(out)
            grad[np.arange(len(x)), ta] = 1
            for layer in reversed(body):
                grad = layer.backward(grad)
    finally:
        for layer, grads in zip(body, saved, strict=True):
            for k, g in grads.items():
                layer.grads[k][...] = g
    return grad
