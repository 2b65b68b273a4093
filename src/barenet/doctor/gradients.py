"""Each layer's backward against central differences, in float64 and on its own.

The scalar differentiated is a fixed random projection of the layer's output, so every
entry of the output counts; a sample of the entries of the input and of each parameter
is nudged up and down. A layer is judged alone, so the first wrong one is named even
when the layers after it pass a wrong gradient on.
"""

from __future__ import annotations

import math

import numpy as np

from barenet.doctor.report import Finding, LayerRow
from barenet.doctor.twins import layer_inputs, reseed
from barenet.errors import ArgumentError
from barenet.gradcheck import central_differences, relative_error
from barenet.layers import Layer

#: Relative error above which a float64 gradient is called wrong (right ones give ~1e-9).
GRAD_TOL = 1e-4


def check_gradients(
    body: list[Layer], rows: list[LayerRow], x: np.ndarray, samples: int, seed: int
) -> list[Finding]:
    """Check every layer of ``body`` (float64 copies) on the inputs ``x`` gives it, from the
    loss backwards; fills the rows' gradient columns and returns the findings."""
    findings: list[Finding] = []
    inputs = layer_inputs(body, x, seed)
    for i in reversed(range(len(body))):
        row = rows[i]
        try:
            worst, errors, entries = check_layer(body[i], inputs[i], i, samples, seed)
        except Exception as exc:  # a layer that cannot run in float64 is still diagnosed
            row.note = "not checked"
            findings.append(
                Finding(
                    "info",
                    "not_checked",
                    f"its gradients could not be checked in float64: {exc!r}",
                    "let the layer compute in its input's dtype",
                    row.name,
                )
            )
            continue
        if worst is None:
            row.note = "wrong shape"
            continue
        if worst > GRAD_TOL:  # a second opinion on fresh entries
            second = check_layer(body[i], inputs[i], i, samples, seed + 1)
            if second[0] is not None and second[0] <= GRAD_TOL:
                worst, errors, entries = second[0], second[1], entries + second[2]
        row.grad_error, row.grad_errors, row.grad_entries = worst, errors, entries
        if worst > GRAD_TOL:
            findings.append(_wrong_gradient(row.name, errors))
    return findings


def _wrong_gradient(name: str, errors: dict[str, float]) -> Finding:
    """The finding for a layer whose gradients ``errors`` (by array) are off."""
    bad = [k for k, v in errors.items() if v > GRAD_TOL]
    parts = ", ".join(f"{k} {v:.2g}" for k, v in errors.items())
    if bad == ["input"]:
        fix = (
            "the value backward returns is wrong: apply the chain rule through this "
            "layer (for an activation, multiply by its derivative, e.g. the mask x > 0)"
        )
    else:
        names = " and ".join(f"self.grads[{k!r}]" for k in bad if k != "input")
        fix = f"{names} disagree: derive them again and check with bn.check_grad in float64"
    return Finding(
        "error",
        "gradient",
        f"backward disagrees with finite differences (relative error {parts}); "
        "the layers after it agree",
        fix,
        name,
    )


def check_layer(
    layer: Layer, x: np.ndarray, index: int, samples: int, seed: int
) -> tuple[float | None, dict[str, float], int]:
    """Relative error of the layer's input and parameter gradients against central
    differences on ``samples`` entries of each, in float64, and the entries checked
    (None for the error when backward's gradient is not shaped like the input)."""
    rng = np.random.default_rng([seed, index, 7])
    scale = float(np.sqrt(np.mean(np.square(x)))) or 1.0
    # A little noise breaks exact ties (max pooling over zeros, ReLU of exact zeros).
    x = np.array(x, dtype=np.float64) + 1e-3 * scale * rng.standard_normal(x.shape)

    def forward() -> np.ndarray:
        reseed(layer, seed, index)
        return np.asarray(layer.forward(x, training=True), dtype=np.float64)

    _require_float64(layer, x, seed, index)
    out = forward()
    r = rng.standard_normal(out.shape)
    analytic = _analytic(layer, r, x.shape)
    if analytic is None:
        return None, {}, 0
    # Rounding in the summed value, seen through a step eps, sets a floor under the
    # difference (a gradient that is truly zero must not read as 100% wrong).
    magnitude = float(np.linalg.norm(out * r))
    errors, entries = {}, 0
    for name, a in {"input": x, **layer.params}.items():
        if analytic.get(name) is None or analytic[name].shape != a.shape or a.size == 0:
            continue
        flat = a.reshape(-1)
        if not np.shares_memory(flat, a):
            continue
        idx = rng.choice(a.size, size=min(samples, a.size), replace=False)
        a_scale = float(np.sqrt(np.mean(np.square(a)))) or 1.0
        eps = 1e-6 * max(a_scale, 1e-2)
        numeric = central_differences(lambda: float(np.sum(forward() * r)), flat, idx, eps)
        errors[name] = _disagreement(analytic[name].reshape(-1)[idx], numeric, eps, magnitude)
        entries += len(idx)
    return max(errors.values(), default=0.0), errors, entries


def _require_float64(layer: Layer, x: np.ndarray, seed: int, index: int) -> None:
    """Refuse a layer that computes float64 input in a narrower type: float32 rounding
    would swamp the differences, so there is no verdict to give."""
    reseed(layer, seed, index)
    kind = np.asarray(layer.forward(x, training=True)).dtype
    if kind != np.float64:
        raise ArgumentError(f"forward returns {kind} for float64 input")


def _analytic(layer: Layer, r: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray] | None:
    """Backward's gradients for the output gradient ``r``: ``"input"`` and each parameter's,
    in float64; None when the input gradient is not of the input's ``shape``."""
    for g in layer.grads.values():
        g[...] = 0
    analytic = {"input": np.array(layer.backward(r), dtype=np.float64)}
    if analytic["input"].shape != shape:
        return None
    analytic.update({k: np.array(g, dtype=np.float64) for k, g in layer.grads.items()})
    return analytic


def _disagreement(exact: np.ndarray, numeric: np.ndarray, eps: float, magnitude: float) -> float:
    """Relative error of ``exact`` against ``numeric``, or the difference measured against
    the rounding floor of a value of size ``magnitude`` seen through ``eps``, if smaller."""
    floor = 1e4 * np.finfo(np.float64).eps * magnitude * math.sqrt(len(exact)) / eps
    diff = float(np.linalg.norm(exact - numeric))
    return min(relative_error(exact, numeric), diff / floor) if floor else 0.0
