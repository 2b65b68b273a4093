"""Losses: ``forward(outputs, targets) -> float`` and ``backward() -> d outputs``.

All losses average over the batch (and, for the element-wise ones, over outputs), so the
gradient carries the matching ``1 / N`` factor.

A loss also says what a model's outputs *mean* — class probabilities, labels, the metrics
that make sense, the accuracy of guessing, the targets it accepts and the output
activation it fuses with — so ``Sequential`` asks the loss and never branches on which
loss it holds: a new loss is one subclass of ``Loss`` in one file.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, ClassVar

import numpy as np

from barenet.activations import Sigmoid, Softmax, sigmoid, softmax
from barenet.errors import ArgumentError, check_range
from barenet.layers import Layer
from barenet.metrics import accuracy

__all__ = ["MAE", "MSE", "BinaryCrossEntropy", "CrossEntropy", "Loss", "get"]

_CLIP = 1e-7  # keeps log() finite when a loss is given probabilities instead of logits


class Loss:
    """Base class: a regression loss unless a subclass says otherwise.

    Subclasses implement ``forward`` and ``backward``; the methods below give the meaning
    of the outputs and have defaults for regression (outputs are the predictions).
    """

    #: A label for reports: "multiclass", "binary" or "regression". The model reads the
    #: methods below, never this label.
    kind: ClassVar[str] = "regression"
    #: The output activation this loss fuses with when it ends a model: training then
    #: skips that layer and the loss reads logits.
    fuses_with: ClassVar[type[Layer] | None] = None
    #: Metrics this loss can report (``compile(metrics=...)``), and those it reports when
    #: none are named.
    metrics: ClassVar[tuple[str, ...]] = ("mae", "mse")
    default_metrics: ClassVar[tuple[str, ...]] = ()
    from_logits: bool = True

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return self.forward(outputs, targets)

    def on_logits(self) -> Loss:
        """This loss reading logits: what a model trains with after fusing the activation."""
        fused = copy.copy(self)
        fused.from_logits = True
        return fused

    # ---- what the outputs mean --------------------------------------------------------
    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """``predict_proba`` of outputs this loss reads (no fused activation applied):
        class probabilities for a classifier on logits, the outputs themselves otherwise."""
        return outputs

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """``predict`` from ``probabilities``: class ids for a classifier, else as given."""
        return probabilities

    def metric(self, name: str, outputs: np.ndarray, targets: np.ndarray) -> float:
        """Metric ``name`` (one of ``metrics``) of a batch of outputs this loss reads."""
        diff = outputs - targets.reshape(outputs.shape)
        if name == "mae":
            return float(np.abs(diff).mean())
        if name == "mse":
            return float(np.square(diff).mean())
        raise ArgumentError(f"metric must be among {', '.join(self.metrics)}; got {name!r}")

    def chance_level(self, classes: int) -> float | None:
        """The accuracy of guessing among ``classes`` outputs, or None when not a question
        this loss answers (fit warns when training stays near it)."""
        return None

    def check_targets(self, name: str, targets: np.ndarray, width: int | None) -> None:
        """Raise ArgumentError, naming ``name``, for targets this loss cannot read from a
        model with ``width`` outputs (None: unknown); checked before training starts."""

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_batch(outputs: np.ndarray, targets: np.ndarray) -> None:
    if outputs.ndim < 1 or len(outputs) != len(targets):
        raise ArgumentError(
            f"targets must have one row per output row: outputs {outputs.shape}, "
            f"targets {np.shape(targets)}"
        )


class CrossEntropy(Loss):
    """Categorical cross-entropy ``-mean(sum(q * log softmax(z)))`` on logits ``z`` (N, C).

    ``targets`` are class ids (N,) or one-hot / probability rows (N, C). With
    ``label_smoothing = e`` the target becomes ``q = (1 - e) * onehot + e / C``.

    ``log softmax`` uses log-sum-exp after subtracting the row maximum, so the loss and
    its gradient are finite for any finite logits. Gradient: ``(softmax(z) - q) / N``
    (the softmax Jacobian and the log's ``1/p`` cancel, which is why the two are fused).
    With ``from_logits=False`` the inputs are probabilities (clipped to [1e-7, 1 - 1e-7]).
    """

    kind = "multiclass"
    fuses_with = Softmax
    metrics = ("accuracy", "mae", "mse")
    default_metrics = ("accuracy",)

    def __init__(self, *, label_smoothing: float = 0.0, from_logits: bool = True) -> None:
        self.label_smoothing = check_range("label_smoothing", label_smoothing, "[0, 1)")
        self.from_logits = bool(from_logits)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return softmax(outputs, axis=1) if self.from_logits else outputs

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities.argmax(axis=1)

    def metric(self, name: str, outputs: np.ndarray, targets: np.ndarray) -> float:
        if name == "accuracy":
            if targets.ndim == 1 and targets.dtype.kind in "iu" and len(targets):
                # class ids checked before training: count the hits (fit calls this per step)
                hits = np.count_nonzero(outputs.argmax(axis=1) == targets)
                return hits / len(targets)
            return accuracy(targets, outputs.argmax(axis=1))
        return super().metric(name, outputs, targets)

    def chance_level(self, classes: int) -> float | None:
        return 1 / classes

    def check_targets(self, name: str, targets: np.ndarray, width: int | None) -> None:
        """Class ids in [0, width) or one-hot rows as wide as the output: checked before
        training rather than by ``forward`` at the batch where a bad one turns up."""
        if targets.ndim == 2:
            if width is not None and targets.shape[1] != width:
                raise ArgumentError(
                    f"{name} must be class ids (N,) or one-hot rows (N, {width}), "
                    f"got shape {targets.shape}"
                )
            return
        if targets.dtype.kind == "f" and not np.all(np.mod(targets, 1) == 0):
            raise ArgumentError(f"{name} of shape (N,) must be integer class ids")
        low, high = float(targets.min()), float(targets.max())
        if low < 0 or (width is not None and high >= width):
            bound = f"[0, {width})" if width is not None else "[0, inf)"
            raise ArgumentError(
                f"{name} must be class ids in {bound}, got values in [{low:g}, {high:g}]"
            )

    def _targets(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Class ids (N,) when they say it all, else the target distribution q (N, C)."""
        n, c = outputs.shape
        targets = np.asarray(targets)
        if targets.ndim == 1:
            if not np.issubdtype(targets.dtype, np.integer):
                if not np.all(np.mod(targets, 1) == 0):
                    raise ArgumentError("targets of shape (N,) must be integer class ids")
                targets = targets.astype(np.int64)
            if targets.size and (targets.min() < 0 or targets.max() >= c):
                raise ArgumentError(
                    f"targets must be class ids in [0, {c}), got values in "
                    f"[{targets.min()}, {targets.max()}]"
                )
            if not self.label_smoothing:
                return targets
            q = np.zeros((n, c), dtype=outputs.dtype)
            q[np.arange(n), targets] = 1
        elif targets.shape == outputs.shape:
            q = targets.astype(outputs.dtype, copy=True)
        else:
            raise ArgumentError(
                f"targets must be class ids (N,) or one-hot (N, {c}), got shape {targets.shape}"
            )
        if self.label_smoothing:
            q *= 1 - self.label_smoothing
            q += self.label_smoothing / c
        return q

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        if outputs.ndim != 2:
            raise ArgumentError(
                f"CrossEntropy expects outputs of shape (N, C), got {outputs.shape}"
            )
        _check_batch(outputs, targets)
        t = self._t = self._targets(outputs, targets)
        n, rows = len(outputs), np.arange(len(outputs))
        if self.from_logits:
            # log p = z - max - log(sum(exp(z - max))): exp never overflows
            shifted = outputs - outputs.max(axis=1, keepdims=True)
            p = np.exp(shifted)
            total = p.sum(axis=1, keepdims=True)
            p /= total
            self._p = p
            log_total = np.log(total)
            if t.ndim == 1:  # -log p[y], read off without building one-hot rows
                return float(np.add.reduce(log_total[:, 0] - shifted[rows, t])) / n
            return float(-(t * (shifted - log_total)).sum() / n)
        self._p = np.clip(outputs, _CLIP, 1 - _CLIP)
        if t.ndim == 1:
            return float(-np.log(self._p[rows, t]).mean())
        return float(-(t * np.log(self._p)).sum() / n)

    def backward(self) -> np.ndarray:
        p, t = self._p, self._t
        n, rows = p.dtype.type(len(p)), np.arange(len(p))
        if self.from_logits:  # (p - y) / N
            if t.ndim == 1:
                grad = p.copy()
                grad[rows, t] -= 1
                grad /= n
                return grad
            return (p - t) / n
        if t.ndim == 1:  # -y / p / N
            grad = np.zeros_like(p)
            grad[rows, t] = -1 / (p[rows, t] * n)
            return grad
        return -t / p / n

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        if not self.from_logits:
            config["from_logits"] = False
        return config


def _as_outputs_shape(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Targets as an array shaped like ``outputs`` (accepting (N,) for (N, 1) outputs)."""
    _check_batch(outputs, targets)
    targets = np.asarray(targets, dtype=outputs.dtype)
    if targets.shape != outputs.shape:
        if targets.size != outputs.size:
            raise ArgumentError(
                f"targets must have the outputs' shape {outputs.shape}, got {targets.shape}"
            )
        targets = targets.reshape(outputs.shape)
    return targets


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy, averaged over samples and outputs, on logits ``z``:
    ``max(z, 0) - z * y + log(1 + exp(-|z|))``, which never overflows; gradient
    ``(sigmoid(z) - y) / (N * K)``. With ``from_logits=False`` inputs are probabilities.
    Fuses with a trailing ``Sigmoid``."""

    kind = "binary"
    fuses_with = Sigmoid
    metrics = ("accuracy", "mae", "mse")
    default_metrics = ("accuracy",)

    def __init__(self, *, from_logits: bool = True) -> None:
        self.from_logits = bool(from_logits)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return sigmoid(outputs) if self.from_logits else outputs

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """0/1 per output; one output per sample gives shape (N,)."""
        labels = (probabilities > 0.5).astype(np.int64)
        return labels.reshape(len(labels)) if labels.shape[1:] == (1,) else labels

    def metric(self, name: str, outputs: np.ndarray, targets: np.ndarray) -> float:
        if name == "accuracy":  # logit 0 is probability 0.5
            threshold = 0.0 if self.from_logits else 0.5
            return float(np.mean((outputs > threshold) == (targets.reshape(outputs.shape) > 0.5)))
        return super().metric(name, outputs, targets)

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        y = self._y = _as_outputs_shape(outputs, targets)
        if self.from_logits:
            self._p = sigmoid(outputs)
            losses = np.maximum(outputs, 0) - outputs * y + np.log1p(np.exp(-np.abs(outputs)))
        else:
            self._p = np.clip(outputs, _CLIP, 1 - _CLIP)
            losses = -(y * np.log(self._p) + (1 - y) * np.log(1 - self._p))
        return float(losses.mean())

    def backward(self) -> np.ndarray:
        p, y, size = self._p, self._y, self._p.dtype.type(self._p.size)
        if self.from_logits:
            return (p - y) / size
        return (p - y) / (p * (1 - p)) / size

    def get_config(self) -> dict[str, Any]:
        return {} if self.from_logits else {"from_logits": False}


class MSE(Loss):
    """Mean squared error ``mean((o - y)**2)``; gradient ``2 (o - y) / (N * K)``."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self._diff = outputs - _as_outputs_shape(outputs, targets)
        return float(np.square(self._diff).mean())

    def backward(self) -> np.ndarray:
        return self._diff * self._diff.dtype.type(2 / self._diff.size)


class MAE(Loss):
    """Mean absolute error ``mean(|o - y|)``; gradient ``sign(o - y) / (N * K)``."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self._diff = outputs - _as_outputs_shape(outputs, targets)
        return float(np.abs(self._diff).mean())

    def backward(self) -> np.ndarray:
        return np.sign(self._diff) * self._diff.dtype.type(1 / self._diff.size)


_REGISTRY: dict[str, type[Loss]] = {
    "cross_entropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "binary_crossentropy": BinaryCrossEntropy,
    "mse": MSE,
    "mae": MAE,
}


def get(loss: str | Loss, **config: Any) -> Loss:
    """A loss by name ("cross_entropy", "binary_cross_entropy", "mse", "mae", or its class
    name), built with ``config`` (``get("cross_entropy", label_smoothing=0.1)``); a ``Loss``
    is returned as given."""
    if isinstance(loss, Loss):
        if config:
            raise ArgumentError(f"options {sorted(config)} are for a loss given by name")
        return loss
    cls: type[Loss] | None = None
    if isinstance(loss, str):
        cls = _REGISTRY.get(loss.lower())
        cls = cls or next((c for c in _REGISTRY.values() if c.__name__ == loss), None)
    if cls is None:
        raise ArgumentError(f"loss must be a Loss or one of {', '.join(_REGISTRY)}; got {loss!r}")
    known = [
        name
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if param.kind is param.KEYWORD_ONLY
    ]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ArgumentError(
            f"{cls.__name__} has no option {unknown[0]!r} (its options: "
            f"{', '.join(known) or 'none'})"
        )
    return cls(**config)
