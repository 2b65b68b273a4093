"""The layer contract, checked on one training step in the model's own dtype.

The model's optimizer updates one flat buffer the layers hold views of, so each layer must
write its gradients in place, shaped and typed like its parameters; forward and backward
must not depend on earlier calls; ``param_backward`` must agree with ``backward``; and
backward must return a gradient shaped like the input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.doctor.measures import unbound
from barenet.doctor.report import Finding, LayerRow
from barenet.doctor.twins import layer_inputs, reseed
from barenet.layers import Layer

if TYPE_CHECKING:
    from barenet.model import Sequential


def check_contract(
    work: Sequential, body: list[Layer], rows: list[LayerRow], x: np.ndarray, y: Any, seed: int
) -> tuple[list[Finding], list[dict[str, np.ndarray]]]:
    """One training step's forward and backward on ``work`` (bound to its flat buffers),
    checking each layer's side of the contract; returns the findings and each layer's
    parameter gradients (copies of the first backward)."""
    assert work.loss is not None
    flat, flat_grads = work._bind()
    train_loss = work.loss.on_logits() if work._fused() else work.loss
    inputs = layer_inputs(body, x, seed)
    train_loss.forward(inputs[-1], y)
    dy = train_loss.backward()
    findings: list[Finding] = []
    grads: list[dict[str, np.ndarray]] = [{} for _ in body]
    for i in reversed(range(len(body))):
        layer, name, x_in = body[i], rows[i].name, inputs[i]
        reseed(layer, seed, i)
        if not _same(layer.forward(x_in, training=True), inputs[i + 1]):
            findings.append(_stateful_forward(name))
        dx, grads[i], repeatable = _backward_twice(layer, dy)
        if not repeatable:
            findings.append(_stateful_backward(name))
        problem = unbound(layer, flat, flat_grads)
        if problem is not None:
            findings.append(Finding("error", "in_place", problem[0], problem[1], name))
        findings += _gradient_types(layer, name)
        findings += _param_backward(layer, dy, grads[i], name)
        for k, g in grads[i].items():  # leave the first backward's gradients for the step
            if k in layer.grads and layer.grads[k].shape == g.shape:
                layer.grads[k][...] = g
        dx = np.asarray(dx)
        if dx.shape != x_in.shape:
            findings.append(_misshaped_input_gradient(dx, x_in, name))
            break
        if dx.dtype != x_in.dtype:
            findings.append(_cast_input_gradient(dx, x_in, name))
        dy = dx.astype(x_in.dtype, copy=False)  # so only the culprit is named
    return findings, grads


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if np.array_equal(a, b):
        return True
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-12, equal_nan=True))


def _backward_twice(layer: Layer, dy: Any) -> tuple[Any, dict[str, np.ndarray], bool]:
    """Backward's input gradient, copies of its parameter gradients, and whether a second
    call with the same ``dy`` gives the same of both."""
    dx = layer.backward(dy)
    grads = {k: np.array(g) for k, g in layer.grads.items()}
    dx2 = layer.backward(dy)
    same = all(_same(layer.grads.get(k), g) for k, g in grads.items()) and _same(dx2, dx)
    return dx, grads, same


def _stateful_forward(name: str) -> Finding:
    return Finding(
        "error",
        "state",
        "forward gives a different output for the same input on a second call",
        "compute the output from the input and self.params only; keep caches for "
        "backward, never results of earlier calls",
        name,
    )


def _stateful_backward(name: str) -> Finding:
    return Finding(
        "error",
        "state",
        "backward gives different gradients when called twice with the same dy "
        "(it adds to self.grads, or keeps something from an earlier call)",
        "assign gradients, don't accumulate: self.grads[name][...] = ..., not +=",
        name,
    )


def _gradient_types(layer: Layer, name: str) -> list[Finding]:
    """A finding for each gradient not of its parameter's shape or dtype."""
    findings = []
    for k, p in layer.params.items():
        g = layer.grads.get(k)
        if g is not None and (g.shape != p.shape or g.dtype != p.dtype):
            findings.append(
                Finding(
                    "error",
                    "shape" if g.shape != p.shape else "dtype",
                    f"self.grads[{k!r}] is {g.dtype}{list(g.shape)}, its parameter is "
                    f"{p.dtype}{list(p.shape)}",
                    "each gradient must have the shape and dtype of its parameter",
                    name,
                )
            )
    return findings


def _param_backward(
    layer: Layer, dy: Any, grads: dict[str, np.ndarray], name: str
) -> list[Finding]:
    """Whether an overridden ``param_backward`` writes backward's parameter ``grads``."""
    if not layer.params or type(layer).param_backward is Layer.param_backward:
        return []
    for g in layer.grads.values():
        g[...] = 0
    layer.param_backward(dy)
    if all(_same(layer.grads.get(k), g) for k, g in grads.items()):
        return []
    return [
        Finding(
            "error",
            "param_backward",
            "param_backward writes other parameter gradients than backward",
            "make param_backward compute exactly backward's parameter gradients",
            name,
        )
    ]


def _misshaped_input_gradient(dx: np.ndarray, x_in: np.ndarray, name: str) -> Finding:
    return Finding(
        "error",
        "shape",
        f"backward returns a gradient of shape {dx.shape} for an input of shape {x_in.shape}",
        "return the gradient with respect to the input, shaped like the input forward received",
        name,
    )


def _cast_input_gradient(dx: np.ndarray, x_in: np.ndarray, name: str) -> Finding:
    return Finding(
        "warning",
        "dtype",
        f"backward returns {dx.dtype} for {x_in.dtype} input (a silent cast)",
        "compute in the input's dtype (e.g. dy.dtype.type(c) for constants)",
        name,
    )
