"""``diagnose``: run a model on one batch and say what is wrong with it.

A network that trains badly rarely says why. ``bn.diagnose(model, x, y)`` (or
``model.diagnose(x, y)``) looks at one batch, on copies of the model, and reports:

* **gradients** — every layer's backward against central differences, in float64, on its
  own (a fixed random projection of its output is the scalar differentiated), on a sample
  of the entries of its input and of each parameter;
* **the layer contract** — gradients written in place into ``self.grads`` (the model's
  optimizer updates one flat buffer the layers hold views of), of the right shape and
  dtype, and forward/backward that do not depend on earlier calls;
* **health** — the starting loss against ``log(C)``, dead ReLU units, saturated
  sigmoid/tanh outputs, gradient norms, the update-to-weight ratio of one optimizer step,
  the scale of the inputs and the sanity of the labels.

Each finding has a severity ("error", "warning" or "info") and a line saying what to try.
The user's model, its optimizer and their random generators are left untouched.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet.activations import ReLU, Sigmoid, Tanh
from barenet.errors import ArgumentError
from barenet.gradcheck import relative_error
from barenet.layers import Layer

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = [
    "Finding",
    "LayerRow",
    "Report",
    "dead_fraction",
    "diagnose",
    "layer_names",
    "saturated_fraction",
    "unbound_gradients",
]

#: Relative error above which a float64 gradient is called wrong (right ones give ~1e-9).
GRAD_TOL = 1e-4
#: Dead ReLU units (never positive on the batch): noted above the first share, an error
#: above the second (trained networks often keep half their units of a dense head idle).
DEAD_NOTE, DEAD_ERROR = 0.5, 0.9
#: Share of sigmoid/tanh outputs within 0.01 of their bounds that counts as saturated.
SATURATED_WARN = 0.5
#: One optimizer step moving a layer's weights by more than this share of their norm.
UPDATE_WARN = 0.5
#: A layer whose gradient is this much smaller than the largest one's has vanishing gradients.
VANISHING = 1e-5


# ---- helpers shared with fit and the Monitor callback ----------------------------------
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
        problem = _unbound(layer, flat, flat_grads)
        if problem is not None:
            return f"{name} ({type(layer).__name__}) {problem[0]}; {problem[1]}"
    return None


def _unbound(layer: Layer, flat: np.ndarray, flat_grads: np.ndarray) -> tuple[str, str] | None:
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


# ---- the report ---------------------------------------------------------------------------
@dataclass
class Finding:
    """One thing the doctor found: ``severity`` ("error", "warning", "info"), a short
    ``cause`` code (e.g. "gradient", "in_place", "dead_relu"), the ``layer`` it concerns
    (None for the data or the whole model), what it saw, and what to try."""

    severity: str
    cause: str
    message: str
    fix: str
    layer: str | None = None


@dataclass
class LayerRow:
    """What the doctor measured on one layer (None where it does not apply)."""

    index: int
    name: str
    kind: str
    output_shape: tuple[int, ...]
    grad_error: float | None = None
    grad_errors: dict[str, float] = field(default_factory=dict)
    grad_entries: int = 0
    grad_norm: float | None = None
    update_ratio: float | None = None
    dead: float | None = None
    saturated: float | None = None
    note: str = ""


@dataclass
class Report:
    """The doctor's answer; ``print(report)`` shows a table, ``to_dict()`` is for code."""

    layers: list[LayerRow]
    findings: list[Finding]
    samples: int
    grad_samples: int
    loss: float | None = None
    expected_loss: float | None = None
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is nothing worse than "info"."""
        return not self.errors and not self.warnings

    @property
    def gradient_ok(self) -> bool:
        """False when a backward disagrees with finite differences or breaks the contract."""
        return not any(f.cause in _GRADIENT_CAUSES for f in self.errors)

    @property
    def first_bad_layer(self) -> str | None:
        """The first layer, from the loss backwards, whose gradient is wrong."""
        bad = {f.layer for f in self.errors if f.cause in _GRADIENT_CAUSES}
        for row in reversed(self.layers):
            if row.name in bad:
                return row.name
        return None

    @property
    def grad_entries(self) -> int:
        """How many entries (inputs and parameters) were checked by finite differences."""
        return sum(row.grad_entries for row in self.layers)

    def causes(self, severity: str | None = None) -> list[tuple[str, str | None]]:
        """``(cause, layer)`` of every finding, or of those of one severity."""
        return [(f.cause, f.layer) for f in self.findings if severity in (None, f.severity)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "gradient_ok": self.gradient_ok,
            "first_bad_layer": self.first_bad_layer,
            "samples": self.samples,
            "grad_samples": self.grad_samples,
            "grad_entries": self.grad_entries,
            "loss": self.loss,
            "expected_loss": self.expected_loss,
            "seconds": self.seconds,
            "layers": [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.layers],
            "findings": [asdict(f) for f in self.findings],
        }

    def __str__(self) -> str:
        lines = [
            f"{len(self.layers)} layers, {self.samples} samples; gradients checked in float64 on "
            f"{self.grad_samples} samples, {self.grad_entries} entries by finite differences",
        ]
        header = ("#", "layer", "output", "gradient", "grad norm", "update", "activations")
        rows = [header]
        for r in self.layers:
            rows.append(
                (
                    str(r.index),
                    r.name,
                    "(" + ", ".join(map(str, r.output_shape)) + ")",
                    r.note or ("-" if r.grad_error is None else _e(r.grad_error)),
                    _e(r.grad_norm),
                    _e(r.update_ratio),
                    _activity(r),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for i, row in enumerate(rows):
            lines.append("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        if self.loss is not None:
            expected = "" if self.expected_loss is None else f" (log C = {self.expected_loss:.3g})"
            lines.append(f"loss on the batch: {self.loss:.4g}{expected}")
        lines.append("")
        if not self.findings:
            lines.append("healthy: no findings")
        for f in self.findings:
            where = f" {f.layer}:" if f.layer else ""
            lines.append(f"{f.severity:<7}{where} {f.message}")
            lines.append(f"        try: {f.fix}")
        return "\n".join(lines)


_GRADIENT_CAUSES = {"gradient", "in_place", "shape", "dtype", "state", "param_backward"}


def _e(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _activity(row: LayerRow) -> str:
    if row.dead is not None:
        return f"dead {row.dead:.0%}"
    if row.saturated is not None:
        return f"saturated {row.saturated:.0%}"
    return ""


# ---- copies of the model ------------------------------------------------------------------
def _clone(model: Sequential, dtype: Any = None) -> Sequential:
    """A deep copy of the model's layers and optimizer; with ``dtype``, every floating array
    a layer holds (parameters, running statistics) cast to it."""
    twin = copy.copy(model)
    twin.layers = copy.deepcopy(model.layers)
    twin.optimizer = copy.deepcopy(model.optimizer)
    twin._flat = twin._flat_grads = None
    if dtype is not None:
        for layer in twin.layers:
            for key, value in vars(layer).items():
                if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                    setattr(layer, key, value.astype(dtype))
                elif isinstance(value, np.dtype) and value.kind == "f":
                    setattr(layer, key, np.dtype(dtype))
            layer.params = {k: np.array(v, dtype=dtype) for k, v in layer.params.items()}
            layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    return twin


def _reseed(layer: Layer, seed: int, index: int) -> None:
    layer.reseed(np.random.default_rng([seed, index]))


def _inputs(layers: Sequence[Layer], x: np.ndarray, seed: int) -> list[np.ndarray]:
    """The input of every layer and the last output, in training mode (Dropout reseeded)."""
    seen = [x]
    for i, layer in enumerate(layers):
        _reseed(layer, seed, i)
        seen.append(layer.forward(seen[-1], training=True))
    return seen


# ---- gradients against finite differences --------------------------------------------------
def _check_layer(
    layer: Layer, x: np.ndarray, index: int, samples: int, seed: int
) -> tuple[float | None, dict[str, float], int]:
    """Relative error of the layer's input and parameter gradients against central
    differences on ``samples`` entries of each, in float64, and the entries checked."""
    rng = np.random.default_rng([seed, index, 7])
    scale = float(np.sqrt(np.mean(np.square(x)))) or 1.0
    # A little noise breaks exact ties (max pooling over zeros, ReLU of exact zeros).
    x = np.array(x, dtype=np.float64) + 1e-3 * scale * rng.standard_normal(x.shape)
    training = True

    def forward() -> np.ndarray:
        _reseed(layer, seed, index)
        return np.asarray(layer.forward(x, training=training), dtype=np.float64)

    _reseed(layer, seed, index)
    kind = np.asarray(layer.forward(x, training=training)).dtype
    if kind != np.float64:  # float32 rounding would swamp the differences: no verdict
        raise ArgumentError(f"forward returns {kind} for float64 input")
    out = forward()
    r = rng.standard_normal(out.shape)
    for g in layer.grads.values():
        g[...] = 0
    analytic = {"input": np.array(layer.backward(r), dtype=np.float64)}
    if analytic["input"].shape != x.shape:
        return None, {}, 0
    analytic.update({k: np.array(g, dtype=np.float64) for k, g in layer.grads.items()})
    arrays = {"input": x, **layer.params}
    # Rounding in the summed value, seen through a step eps, sets a floor under the
    # difference (a gradient that is truly zero must not read as 100% wrong).
    magnitude = float(np.linalg.norm(out * r))
    errors, entries = {}, 0
    for name, a in arrays.items():
        if analytic.get(name) is None or analytic[name].shape != a.shape or a.size == 0:
            continue
        flat = a.reshape(-1)
        if not np.shares_memory(flat, a):
            continue
        idx = rng.choice(a.size, size=min(samples, a.size), replace=False)
        a_scale = float(np.sqrt(np.mean(np.square(a)))) or 1.0
        eps = 1e-6 * max(a_scale, 1e-2)
        numeric = np.empty(len(idx))
        for k, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + eps
            up = float(np.sum(forward() * r))
            flat[i] = old - eps
            down = float(np.sum(forward() * r))
            flat[i] = old
            numeric[k] = (up - down) / (2 * eps)
        exact = analytic[name].reshape(-1)[idx]
        floor = 1e4 * np.finfo(np.float64).eps * magnitude * math.sqrt(len(idx)) / eps
        diff = float(np.linalg.norm(exact - numeric))
        errors[name] = min(relative_error(exact, numeric), diff / floor) if floor else 0.0
        entries += len(idx)
    return max(errors.values(), default=0.0), errors, entries


def _gradients(
    body: list[Layer], rows: list[LayerRow], x: np.ndarray, samples: int, seed: int
) -> list[Finding]:
    findings: list[Finding] = []
    inputs = _inputs(body, x, seed)
    for i in reversed(range(len(body))):
        row = rows[i]
        try:
            worst, errors, entries = _check_layer(body[i], inputs[i], i, samples, seed)
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
        if worst is not None and worst > GRAD_TOL:  # a second opinion on fresh entries
            second = _check_layer(body[i], inputs[i], i, samples, seed + 1)
            if second[0] is not None and second[0] <= GRAD_TOL:
                worst, errors, entries = second[0], second[1], entries + second[2]
        row.grad_error, row.grad_errors, row.grad_entries = worst, errors, entries
        if worst is None or worst <= GRAD_TOL:
            continue
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
        findings.append(
            Finding(
                "error",
                "gradient",
                f"backward disagrees with finite differences (relative error {parts}); "
                "the layers after it agree",
                fix,
                row.name,
            )
        )
    return findings


# ---- the layer contract, in the model's own dtype ----------------------------------------
def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if np.array_equal(a, b):
        return True
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-12, equal_nan=True))


def _contract(
    work: Sequential, body: list[Layer], rows: list[LayerRow], x: np.ndarray, y: Any, seed: int
) -> tuple[list[Finding], list[dict[str, np.ndarray]]]:
    """One training step's forward and backward on ``work`` (bound to its flat buffers),
    checking each layer's side of the contract; returns the findings and each layer's
    parameter gradients (copies of the first backward)."""
    assert work.loss is not None
    flat, flat_grads = work._bind()
    train_loss = work.loss.on_logits() if work._fused() else work.loss
    inputs = _inputs(body, x, seed)
    train_loss.forward(inputs[-1], y)
    dy = train_loss.backward()
    findings: list[Finding] = []
    grads: list[dict[str, np.ndarray]] = [{} for _ in body]
    for i in reversed(range(len(body))):
        layer, name, x_in = body[i], rows[i].name, inputs[i]
        _reseed(layer, seed, i)
        again = layer.forward(x_in, training=True)
        if not _same(again, inputs[i + 1]):
            findings.append(
                Finding(
                    "error",
                    "state",
                    "forward gives a different output for the same input on a second call",
                    "compute the output from the input and self.params only; keep caches for "
                    "backward, never results of earlier calls",
                    name,
                )
            )
        dx = layer.backward(dy)
        grads[i] = {k: np.array(g) for k, g in layer.grads.items()}
        dx2 = layer.backward(dy)
        if any(not _same(layer.grads.get(k), g) for k, g in grads[i].items()) or not _same(dx2, dx):
            findings.append(
                Finding(
                    "error",
                    "state",
                    "backward gives different gradients when called twice with the same dy "
                    "(it adds to self.grads, or keeps something from an earlier call)",
                    "assign gradients, don't accumulate: self.grads[name][...] = ..., not +=",
                    name,
                )
            )
        problem = _unbound(layer, flat, flat_grads)
        if problem is not None:
            findings.append(Finding("error", "in_place", problem[0], problem[1], name))
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
        if layer.params and type(layer).param_backward is not Layer.param_backward:
            for g in layer.grads.values():
                g[...] = 0
            layer.param_backward(dy)
            if any(not _same(layer.grads.get(k), g) for k, g in grads[i].items()):
                findings.append(
                    Finding(
                        "error",
                        "param_backward",
                        "param_backward writes other parameter gradients than backward",
                        "make param_backward compute exactly backward's parameter gradients",
                        name,
                    )
                )
        for k, g in grads[i].items():  # leave the first backward's gradients for the step
            if k in layer.grads and layer.grads[k].shape == g.shape:
                layer.grads[k][...] = g
        dx = np.asarray(dx)
        if dx.shape != x_in.shape:
            findings.append(
                Finding(
                    "error",
                    "shape",
                    f"backward returns a gradient of shape {dx.shape} for an input of shape "
                    f"{x_in.shape}",
                    "return the gradient with respect to the input, shaped like the input "
                    "forward received",
                    name,
                )
            )
            break
        if dx.dtype != x_in.dtype:
            findings.append(
                Finding(
                    "warning",
                    "dtype",
                    f"backward returns {dx.dtype} for {x_in.dtype} input (a silent cast)",
                    "compute in the input's dtype (e.g. dy.dtype.type(c) for constants)",
                    name,
                )
            )
        dy = dx.astype(x_in.dtype, copy=False)  # so only the culprit is named
    return findings, grads


# ---- the data ------------------------------------------------------------------------------
def _labels(y: np.ndarray, classes: int | None, x: np.ndarray) -> tuple[list[Finding], bool]:
    """Findings about class labels, and whether the loss can be computed with them."""
    findings: list[Finding] = []
    if y.ndim == 2 and classes is not None and y.shape[1] == classes:
        ids = y.argmax(axis=1)
    elif y.ndim == 1 and (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)):
        ids = y.astype(np.int64)
    else:
        findings.append(
            Finding(
                "error",
                "labels",
                f"labels of shape {y.shape} and dtype {y.dtype} are neither class ids (N,) "
                f"nor one-hot rows (N, {classes})",
                "give integer class ids, e.g. y.astype(int)",
            )
        )
        return findings, False
    if classes is not None and len(ids) and (ids.min() < 0 or ids.max() >= classes):
        findings.append(
            Finding(
                "error",
                "labels",
                f"labels range over [{ids.min()}, {ids.max()}] but the model has {classes} outputs",
                f"class ids must lie in [0, {classes}): renumber them, or widen the last layer",
            )
        )
        return findings, False
    counts = np.bincount(ids - ids.min())
    if np.count_nonzero(counts) == 1:
        findings.append(
            Finding(
                "warning",
                "labels",
                f"every label in the batch is {ids[0]}",
                "check how the labels were read, and shuffle before taking a batch",
            )
        )
        return findings, True
    # Neighbours in input space share labels far more often than chance in any learnable
    # data set; shuffled or misaligned labels bring that down to chance.
    n = len(ids)
    if n >= 50:
        flat = x.reshape(n, -1).astype(np.float64)
        sq = np.einsum("ij,ij->i", flat, flat)
        dist = sq[:, None] + sq[None, :] - 2 * (flat @ flat.T)
        np.fill_diagonal(dist, np.inf)
        agree = float(np.mean(ids[dist.argmin(axis=1)] == ids))
        chance = float(np.sum(counts * (counts - 1)) / (n * (n - 1)))
        margin = 3 * math.sqrt(chance * (1 - chance) / n)
        if agree <= chance + margin:
            findings.append(
                Finding(
                    "warning",
                    "labels_shuffled",
                    f"a sample's nearest neighbour in x shares its label {agree:.0%} of the "
                    f"time, about chance ({chance:.0%}): the labels look unrelated to the inputs",
                    "check that x and y were shuffled together and come from the same files",
                )
            )
    return findings, True


def _inputs_scale(x_raw: np.ndarray) -> list[Finding]:
    if np.issubdtype(x_raw.dtype, np.integer) or x_raw.dtype == np.bool_:
        peak = float(np.abs(x_raw).max()) if x_raw.size else 0.0
        if peak > 10:
            return [
                Finding(
                    "warning",
                    "input_scale",
                    f"inputs are {x_raw.dtype} integers up to {peak:.4g}",
                    "scale them to about [-1, 1], e.g. x / 255 for pixels",
                )
            ]
        return []
    x = x_raw.astype(np.float64)
    if not np.all(np.isfinite(x)):
        return [
            Finding(
                "error",
                "input_scale",
                "inputs contain NaN or infinite values",
                "find where they come from (np.isnan(x).any(axis=...)) and drop or fill them",
            )
        ]
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 10:
        return [
            Finding(
                "warning",
                "input_scale",
                f"inputs reach |x| = {peak:.4g}",
                "scale them to about [-1, 1]: pixels / 255, or standardise each feature",
            )
        ]
    return []


# ---- health --------------------------------------------------------------------------------
def _health(
    work: Sequential,
    body: list[Layer],
    rows: list[LayerRow],
    grads: list[dict[str, np.ndarray]],
) -> list[Finding]:
    """Gradient norms, and the update-to-weight ratio of one optimizer step on ``work``."""
    findings: list[Finding] = []
    norms = {}
    for i, row in enumerate(rows[: len(body)]):
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
    finite = [v for v in norms.values() if math.isfinite(v)]
    top = max(finite, default=0.0)
    for i, value in norms.items():
        if top > 0 and value < VANISHING * top:
            findings.append(
                Finding(
                    "warning",
                    "vanishing",
                    f"gradient norm {value:.2g}, against {top:.2g} in another layer",
                    "look for dead or saturated activations between this layer and the loss; "
                    "use ReLU with He initialisation, or add BatchNorm",
                    rows[i].name,
                )
            )
    optimizer = work.optimizer
    if optimizer is None or work._flat is None or work._flat_grads is None or not finite:
        return findings
    if unbound_gradients(body, work._flat, work._flat_grads) is not None:
        return findings
    before = [{k: np.array(p, dtype=np.float64) for k, p in layer.params.items()} for layer in body]
    optimizer.step([work._flat], [work._flat_grads])
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


def _activations(
    body: list[Layer], rows: list[LayerRow], outputs: list[np.ndarray]
) -> list[Finding]:
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


def _start_loss(loss: float, expected: float | None) -> list[Finding]:
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


# ---- the entry point -----------------------------------------------------------------------
def _is_sequential(model: Any) -> bool:
    """Whether ``model`` is a ``barenet.Sequential`` (told by its class's home, since the
    model module imports this one)."""
    return any(
        cls.__name__ == "Sequential" and cls.__module__ == "barenet.model"
        for cls in type(model).__mro__
    )


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
    """Run ``model`` on one batch of ``(x, y)`` and report what looks wrong (see the module).

    ``batch_size`` samples drawn at random (seeded) serve for the loss, the activations,
    the labels and one optimizer step; ``grad_batch`` of them for the float64 gradient
    checks, on ``samples`` entries of each layer's input and of each parameter array.
    ``loss`` is used when the model is not compiled (default: cross-entropy).
    The model, its optimizer and its random generators are not changed.
    """
    from barenet import losses as losses_mod
    from barenet.errors import check_int

    begun = time.perf_counter()
    if not _is_sequential(model):
        raise ArgumentError(f"model must be a barenet Sequential, got {type(model).__name__}")
    batch_size = check_int("batch_size", batch_size)
    grad_batch = check_int("grad_batch", grad_batch, minimum=2)
    samples = check_int("samples", samples)
    if not model.layers:
        raise ArgumentError("the model has no layers")
    x_raw, y = np.asarray(x), np.asarray(y)
    if x_raw.ndim < 2 or len(x_raw) == 0:
        raise ArgumentError(f"x must be a non-empty batch of shape (N, ...), got {x_raw.shape}")
    if not np.issubdtype(x_raw.dtype, np.number) or np.issubdtype(x_raw.dtype, np.complexfloating):
        raise ArgumentError(f"x must be numeric, got dtype {x_raw.dtype}")
    findings: list[Finding] = []
    names = layer_names(model.layers)
    if len(y) != len(x_raw):
        findings.append(
            Finding(
                "error",
                "length",
                f"x has {len(x_raw)} samples and y {len(y)} labels",
                "give one label per sample: check slicing and train/test splits",
            )
        )
        return Report([], findings, 0, 0, seconds=time.perf_counter() - begun)

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(x_raw), size=min(batch_size, len(x_raw)), replace=False))
    x_raw, y = x_raw[pick], y[pick]
    findings += _inputs_scale(x_raw)
    dtype = model.dtype
    xb = np.ascontiguousarray(x_raw, dtype=dtype)

    work = _clone(model)
    if work.loss is None:
        work.loss = losses_mod.get(loss if loss is not None else "cross_entropy")
    fused = work._fused()
    body = work.layers[:-1] if fused else work.layers
    loss_fn = work.loss.on_logits() if fused else work.loss

    with np.errstate(all="ignore"), work._threads():
        outputs = [xb]
        for layer in body:
            outputs.append(layer.forward(outputs[-1], training=False))
        rows = [
            LayerRow(i, names[i], type(layer).__name__, tuple(outputs[i + 1].shape[1:]))
            for i, layer in enumerate(body)
        ]
        if fused:
            rows.append(
                LayerRow(
                    len(body),
                    names[-1],
                    type(work.layers[-1]).__name__,
                    rows[-1].output_shape if rows else (),
                    note="fused with the loss",
                )
            )
        findings += _activations(body, rows, outputs)
        classes = None
        if work.loss.kind == "multiclass" and outputs[-1].ndim == 2:
            classes = outputs[-1].shape[1]
        labels_ok = True
        if work.loss.kind == "multiclass":
            label_findings, labels_ok = _labels(y, classes, xb)
            findings += label_findings
        report = Report(rows, findings, len(xb), min(grad_batch, len(xb)))
        if classes is not None and classes > 1:
            report.expected_loss = math.log(classes)
        if labels_ok:
            report.loss = float(loss_fn.forward(outputs[-1], y)) + work._penalty()
            findings += _start_loss(report.loss, report.expected_loss)
            contract, grads = _contract(work, list(body), rows, xb, y, seed)
            findings += contract
            findings += _health(work, list(body), rows, grads)
        if report.grad_samples >= 2:
            f64 = _clone(model, np.float64)
            x64 = np.asarray(xb[: report.grad_samples], dtype=np.float64)
            findings += _gradients(f64.layers[: len(body)], rows, x64, samples, seed)
    order = {"error": 0, "warning": 1, "info": 2}
    position = {row.name: -row.index for row in rows}
    findings.sort(key=lambda f: (order[f.severity], position.get(f.layer or "", 1)))
    report.findings = findings
    report.seconds = time.perf_counter() - begun
    return report
