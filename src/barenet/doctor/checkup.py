"""``diagnose``: check the arguments, draw a batch, and run every check on copies of the
model, in an order where each check sees what the ones before it left sane."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.doctor.contract import check_contract
from barenet.doctor.data import check_inputs, check_labels
from barenet.doctor.gradients import check_gradients
from barenet.doctor.health import activations, gradient_steps, start_loss
from barenet.doctor.measures import layer_names
from barenet.doctor.report import Finding, LayerRow, Report
from barenet.doctor.twins import clone
from barenet.errors import ArgumentError
from barenet.layers import Layer

if TYPE_CHECKING:
    from barenet.model import Sequential


def diagnose(
    model: Sequential,
    x: Any,
    y: Any,
    *,
    batch_size: int = 256,
    grad_batch: int = 4,
    samples: int = 12,
    seed: int = 0,
    loss: Any = None,
) -> Report:
    """Run ``model`` on one batch of ``(x, y)`` and report what looks wrong (see
    ``barenet.doctor``).

    ``batch_size`` samples drawn at random (seeded) serve for the loss, the activations,
    the labels and one optimizer step; ``grad_batch`` of them for the float64 gradient
    checks, on ``samples`` entries of each layer's input and of each parameter array.
    ``loss`` is used when the model is not compiled (default: cross-entropy).
    The model, its optimizer and its random generators are not changed.
    """
    from barenet.errors import check_int

    begun = time.perf_counter()
    if not _is_sequential(model):
        raise ArgumentError(f"model must be a barenet Sequential, got {type(model).__name__}")
    batch_size = check_int("batch_size", batch_size)
    grad_batch = check_int("grad_batch", grad_batch, minimum=2)
    samples = check_int("samples", samples)
    x_raw, y = _checked_data(model, x, y)
    if len(y) != len(x_raw):
        mismatch = Finding(
            "error",
            "length",
            f"x has {len(x_raw)} samples and y {len(y)} labels",
            "give one label per sample: check slicing and train/test splits",
        )
        return Report([], [mismatch], 0, 0, seconds=time.perf_counter() - begun)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(x_raw), size=min(batch_size, len(x_raw)), replace=False))
    x_raw, y = x_raw[pick], y[pick]
    findings = check_inputs(x_raw)
    xb = np.ascontiguousarray(x_raw, dtype=model.dtype)
    work = _working_copy(model, loss)
    with np.errstate(all="ignore"), work._threads():
        report = _examine(work, xb, y, findings, grad_batch, seed)
        if report.grad_samples >= 2:
            f64 = clone(model, np.float64)
            x64 = np.asarray(xb[: report.grad_samples], dtype=np.float64)
            body = f64.layers[: len(_body(work))]
            findings += check_gradients(body, report.layers, x64, samples, seed)
    report.findings = _in_order(findings, report.layers)
    report.seconds = time.perf_counter() - begun
    return report


def _is_sequential(model: Any) -> bool:
    """Whether ``model`` is a ``barenet.Sequential`` (told by its class's home, since the
    model module imports this one)."""
    return any(
        cls.__name__ == "Sequential" and cls.__module__ == "barenet.model"
        for cls in type(model).__mro__
    )


def _checked_data(model: Sequential, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as arrays; ``ArgumentError`` for a model without layers or an ``x``
    that is not a non-empty numeric batch."""
    if not model.layers:
        raise ArgumentError("the model has no layers")
    x_raw, y = np.asarray(x), np.asarray(y)
    if x_raw.ndim < 2 or len(x_raw) == 0:
        raise ArgumentError(f"x must be a non-empty batch of shape (N, ...), got {x_raw.shape}")
    if not np.issubdtype(x_raw.dtype, np.number) or np.issubdtype(x_raw.dtype, np.complexfloating):
        raise ArgumentError(f"x must be numeric, got dtype {x_raw.dtype}")
    return x_raw, y


def _working_copy(model: Sequential, loss: Any) -> Sequential:
    """A copy of ``model`` to run the checks on, with a loss even if it is not compiled."""
    from barenet import losses as losses_mod

    work = clone(model)
    if work.loss is None:
        work.loss = losses_mod.get(loss if loss is not None else "cross_entropy")
    return work


def _examine(
    work: Sequential,
    xb: np.ndarray,
    y: np.ndarray,
    findings: list[Finding],
    grad_batch: int,
    seed: int,
) -> Report:
    """Run ``work`` on the batch: the activations, the labels, the loss, the layer contract
    and one optimizer step; every finding is added to ``findings``."""
    assert work.loss is not None
    body = _body(work)
    outputs = [xb]
    for layer in body:
        outputs.append(layer.forward(outputs[-1], training=False))
    rows = _rows(work, body, outputs)
    findings += activations(body, rows, outputs)
    classes = None
    if work.loss.kind == "multiclass" and outputs[-1].ndim == 2:
        classes = outputs[-1].shape[1]
    labels_ok = True
    if work.loss.kind == "multiclass":
        label_findings, labels_ok = check_labels(y, classes, xb)
        findings += label_findings
    report = Report(rows, findings, len(xb), min(grad_batch, len(xb)))
    if classes is not None and classes > 1:
        report.expected_loss = math.log(classes)
    if labels_ok:
        loss_fn = work.loss.on_logits() if work._fused() else work.loss
        report.loss = float(loss_fn.forward(outputs[-1], y)) + work._penalty()
        findings += start_loss(report.loss, report.expected_loss)
        contract, grads = check_contract(work, list(body), rows, xb, y, seed)
        findings += contract
        findings += gradient_steps(work, list(body), rows, grads)
    return report


def _body(work: Sequential) -> list[Layer]:
    """The layers training runs: all but a last activation fused with the loss."""
    return work.layers[:-1] if work._fused() else work.layers


def _rows(work: Sequential, body: list[Layer], outputs: list[np.ndarray]) -> list[LayerRow]:
    """A row per layer of ``body`` with its output shape, and one for an activation fused
    with the loss (which training skips)."""
    names = layer_names(work.layers)
    rows = [
        LayerRow(i, names[i], type(layer).__name__, tuple(outputs[i + 1].shape[1:]))
        for i, layer in enumerate(body)
    ]
    if len(body) < len(work.layers):
        rows.append(
            LayerRow(
                len(body),
                names[-1],
                type(work.layers[-1]).__name__,
                rows[-1].output_shape if rows else (),
                note="fused with the loss",
            )
        )
    return rows


def _in_order(findings: list[Finding], rows: list[LayerRow]) -> list[Finding]:
    """Errors first, then warnings, then notes; within each, from the loss backwards, and
    findings about the data or the whole model last."""
    order = {"error": 0, "warning": 1, "info": 2}
    position = {row.name: -row.index for row in rows}
    findings.sort(key=lambda f: (order[f.severity], position.get(f.layer or "", 1)))
    return findings
