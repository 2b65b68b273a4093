"""The training step on one batch: forward, loss, backward, and the optimizer's update.

``Sequential.train_step``, ``Sequential.gradients`` and every batch of ``fit`` run this
code, so they agree bit for bit. The model hands over a checked batch and its *training
path*: the layers training runs and the loss it reads (``Sequential._training_path``
leaves out a trailing activation the loss fuses with, and the loss then reads logits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from barenet.doctor import layer_names, unbound_gradients
from barenet.errors import ArgumentError, TrainingError
from barenet.layers import Layer
from barenet.losses import Loss

if TYPE_CHECKING:
    from barenet.model import Sequential
    from barenet.optim import Optimizer

__all__ = ["TrainingPath", "first_learner", "gradients", "train"]

#: The layers a training step runs and the loss it reads.
TrainingPath = tuple[list[Layer], Loss]


def first_learner(layers: Sequence[Layer]) -> int:
    """Index of the first layer with parameters: backpropagation stops there, as no one
    needs the gradient with respect to the input images."""
    for i, layer in enumerate(layers):
        if layer.params:
            return i
    raise ArgumentError("the model has no parameters to train")


def _forward(layers: Sequence[Layer], x: np.ndarray, training: bool) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x, training=training)
    return x


def _backward(layers: Sequence[Layer], loss_fn: Loss) -> None:
    """Back from the loss through ``layers``, whose first one has parameters and
    computes only their gradients."""
    grad = loss_fn.backward()
    for layer in reversed(layers[1:]):
        grad = layer.backward(grad)
    layers[0].param_backward(grad)


def train(
    model: Sequential,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    path: TrainingPath,
    *,
    check_bound: bool,
) -> tuple[float, np.ndarray]:
    """One step on a checked batch: the loss (with penalties) and the outputs the loss
    read. A loss that is not finite returns before the weights change (the layers' caches
    and BatchNorm's running statistics have moved); the caller says so.
    ``check_bound`` also checks that every layer wrote its gradients in place."""
    layers, loss_fn = path
    flat, flat_grads = model._bind()  # before backward: the gradients go into flat_grads
    out = _forward(layers, x, training=True)
    loss = loss_fn.forward(out, y) + model._penalty()
    if not math.isfinite(loss):
        return loss, out
    _backward(layers[first_learner(layers) :], loss_fn)
    if check_bound and (unbound := unbound_gradients(model.layers, flat, flat_grads)):
        raise TrainingError(unbound)  # a layer that would never train
    optimizer.step([flat], [flat_grads])
    return loss, out


def gradients(
    model: Sequential, x: np.ndarray, y: np.ndarray, path: TrainingPath, *, training: bool
) -> dict[str, np.ndarray]:
    """The loss gradients of a checked batch, keyed ``"<layer>/<param>"``, with no update;
    BatchNorm's running statistics are put back as they were. See
    ``Sequential.gradients``."""
    layers, loss_fn = path
    first = first_learner(layers)
    model._bind()
    buffers = model.get_buffers()
    try:
        loss_fn.forward(_forward(layers, x, training), y)
        _backward(layers[first:], loss_fn)
    finally:
        model.set_buffers(buffers)
    return {
        f"{name}/{k}": g.copy()
        for name, layer in zip(layer_names(model.layers), model.layers, strict=True)
        for k, g in layer.grads.items()
    }
