"""Training health on one batch: the starting loss, dead and saturated activations,
gradient norms, and how far one optimizer step moves the weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from barenet.activations import ReLU
from barenet.doctor.measures import dead_fraction, saturated_fraction, unbound_gradients
from barenet.doctor.report import Finding, LayerRow
from barenet.layers import Layer

if TYPE_CHECKING:
    from barenet.model import Sequential

#: Dead ReLU units (never positive on the batch): noted above the first share, an error
#: above the second (trained networks often keep half their units of a dense head idle).
DEAD_NOTE, DEAD_ERROR = 0.5, 0.9
#: Share of sigmoid/tanh outputs within 0.01 of their bounds that counts as saturated.
SATURATED_WARN = 0.5
#: One optimizer step moving a layer's weights by more than this share of their norm.
UPDATE_WARN = 0.5
#: A layer whose gradient is this much smaller than the largest one's has vanishing gradients.
VANISHING = 1e-5


def start_loss(loss: float, expected: float | None) -> list[Finding]:
    """A finding when the loss on the batch is not finite or far above ``log(C)``."""
    if not math.isfinite(loss):
        return [
            Finding(
                "error",
                "loss",
                f"the loss on the batch is {loss}",
                "check the inputs for NaN and huge values, and the weights for NaN",
            )
        ]
    # log C + 3 is what logits of standard deviation about 2.5 give: far more confident than
    # any initialisation (He-initialised layers after BatchNorm give about log C + 1).
    if expected is not None and loss > expected + 3.0:
        return [
            Finding(
                "warning",
                "start_loss",
                f"the loss is {loss:.3g}, far above log(C) = {expected:.3g}, the loss of "
                "a network that guesses uniformly: its outputs are confidently wrong",
                "scale the inputs; initialise the last layer small; lower the learning rate",
            )
        ]
    return []


def activations(
    body: list[Layer], rows: list[LayerRow], outputs: list[np.ndarray]
) -> list[Finding]:
    """Dead ReLU units and saturated sigmoid/tanh outputs (the last layer's saturation
    is the answer, not a problem), recorded in ``rows``."""
    findings: list[Finding] = []
    for i, layer in enumerate(body):
        row, y = rows[i], outputs[i + 1]
        if isinstance(layer, ReLU):
            row.dead = dead_fraction(y)
            if row.dead > DEAD_NOTE:
                findings.append(
                    Finding(
                        "error" if row.dead > DEAD_ERROR else "info",
                        "dead_relu",
                        f"{row.dead:.0%} of the units never fire on the batch; they pass no "
                        "gradient and cannot recover",
                        "lower the learning rate, check the input scale, use He "
                        "initialisation, or try LeakyReLU",
                        row.name,
                    )
                )
        row.saturated = saturated_fraction(layer, y)
        if row.saturated is not None and i < len(body) - 1 and row.saturated > SATURATED_WARN:
            findings.append(
                Finding(
                    "warning",
                    "saturated",
                    f"{row.saturated:.0%} of the outputs sit at the flat ends of the curve, "
                    "where almost no gradient passes",
                    "scale the inputs, use Glorot initialisation for tanh/sigmoid, or use ReLU",
                    row.name,
                )
            )
    return findings


def gradient_steps(
    work: Sequential,
    body: list[Layer],
    rows: list[LayerRow],
    grads: list[dict[str, np.ndarray]],
) -> list[Finding]:
    """Gradient norms, and the update-to-weight ratio of one optimizer step on ``work``."""
    findings, norms = _gradient_norms(rows[: len(body)], grads)
    finite = [v for v in norms.values() if math.isfinite(v)]
    findings += _vanishing(rows, norms, max(finite, default=0.0))
    if work.optimizer is None or work._flat is None or work._flat_grads is None or not finite:
        return findings
    if unbound_gradients(body, work._flat, work._flat_grads) is not None:
        return findings
    return findings + _update_ratios(work, body, rows)


def _gradient_norms(
    rows: list[LayerRow], grads: list[dict[str, np.ndarray]]
) -> tuple[list[Finding], dict[int, float]]:
    """Each layer's parameter gradient norm (recorded in ``rows``), by index, and an error
    for each that is not finite."""
    findings: list[Finding] = []
    norms = {}
    for i, row in enumerate(rows):
        if not grads[i]:
            continue
        g = np.concatenate([a.reshape(-1).astype(np.float64) for a in grads[i].values()])
        row.grad_norm = float(np.linalg.norm(g))
        norms[i] = row.grad_norm
        if not math.isfinite(row.grad_norm):
            findings.append(
                Finding(
                    "error",
                    "exploding",
                    "the gradient is not finite",
                    "lower the learning rate, scale the inputs, or clip the gradient",
                    row.name,
                )
            )
    return findings, norms


def _vanishing(rows: list[LayerRow], norms: dict[int, float], top: float) -> list[Finding]:
    """A warning for each layer whose gradient norm is below ``VANISHING`` times ``top``."""
    return [
        Finding(
            "warning",
            "vanishing",
            f"gradient norm {value:.2g}, against {top:.2g} in another layer",
            "look for dead or saturated activations between this layer and the loss; "
            "use ReLU with He initialisation, or add BatchNorm",
            rows[i].name,
        )
        for i, value in norms.items()
        if top > 0 and value < VANISHING * top
    ]


def _update_ratios(work: Sequential, body: list[Layer], rows: list[LayerRow]) -> list[Finding]:
    """Take one optimizer step on ``work`` and measure how far it moves each layer's
    weights against their norm (recorded in ``rows``)."""
    optimizer = work.optimizer
    assert optimizer is not None and work._flat is not None and work._flat_grads is not None
    before = [{k: np.array(p, dtype=np.float64) for k, p in layer.params.items()} for layer in body]
    optimizer.step([work._flat], [work._flat_grads])
    findings: list[Finding] = []
    for i, layer in enumerate(body):
        if not layer.params:
            continue
        w = np.concatenate([a.reshape(-1) for a in before[i].values()])
        step = np.concatenate([(layer.params[k] - before[i][k]).reshape(-1) for k in layer.params])
        size = float(np.linalg.norm(w))
        if size == 0:
            continue
        ratio = float(np.linalg.norm(step)) / size
        rows[i].update_ratio = ratio
        if not math.isfinite(ratio) or ratio > UPDATE_WARN:
            findings.append(
                Finding(
                    "warning",
                    "update_ratio",
                    f"one optimizer step changes the weights by {ratio:.2g} of their norm "
                    "(about 1e-3 is typical)",
                    f"lower the learning rate (now {optimizer.current_lr:.3g})",
                    rows[i].name,
                )
            )
    return findings
