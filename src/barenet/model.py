"""``Sequential``: a stack of layers with compile / fit / evaluate / predict / save."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from barenet import losses as losses_mod
from barenet import optim, parallel
from barenet.activations import sigmoid, softmax
from barenet.callbacks import Callback, History, ProgressBar
from barenet.doctor import Report, diagnose, unbound_gradients
from barenet.errors import ArgumentError, BarenetError, TrainingError, check_int, is_real
from barenet.init import as_rng
from barenet.layers import Layer
from barenet.metrics import accuracy
from barenet.modelfile import save_model
from barenet.splits import split_off

__all__ = ["Sequential"]

_METRICS = ("accuracy", "mae", "mse")


@dataclass
class _TrainingState:
    """What ``fit`` restores when the loss turns NaN: see ``Sequential._training_state``."""

    weights: np.ndarray
    buffers: list[dict[str, np.ndarray]]
    optimizer: dict[str, Any]


_NO_TARGETS: Any = object()  # predict's data: x alone


def _as_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)``, or ArgumentError when NumPy cannot make one array of it."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:
        raise ArgumentError(
            f"{name} must be an array of numbers, got a {type(value).__name__} NumPy cannot "
            f"make one array of ({e})"
        ) from None


def _says_nothing_of_its_shape(layer: Layer) -> bool:
    """True for a layer defined outside barenet that keeps ``Layer.output_shape`` (which
    assumes the shape is unchanged): its real output width is unknown."""
    cls = type(layer)
    return cls.output_shape is Layer.output_shape and not cls.__module__.startswith("barenet.")


class Sequential:
    """Layers applied one after the other.

    >>> import barenet as bn
    >>> model = bn.Sequential([bn.Dense(2, 64), bn.ReLU(), bn.Dense(64, 3)], seed=0)
    >>> model.compile(loss="cross_entropy", optimizer=bn.Adam(lr=0.02))

    Parameters
    ----------
    layers : list of Layer
    seed : int, optional
        Re-initialise every layer's parameters from this seed, so the same seed gives the
        same weights.
    """

    def __init__(self, layers: Iterable[Layer] = (), *, seed: int | None = None) -> None:
        self.layers: list[Layer] = []
        for layer in layers:
            self.add(layer)
        if seed is not None:
            rng = as_rng(seed)
            for layer in self.layers:
                layer.reset_parameters(rng)
        self.loss: losses_mod.Loss | None = None
        self.optimizer: optim.Optimizer | None = None
        self.metrics: list[str] = []
        self.input_shape: tuple[int, ...] | None = None
        #: Free-form facts saved with the model: class names, preprocessing, dataset, ...
        self.metadata: dict[str, Any] = {}
        self.stop_training = False
        self._flat: np.ndarray | None = None
        self._flat_grads: np.ndarray | None = None
        #: The History of the latest ``fit`` (callbacks such as Monitor add to it).
        self.history: History | None = None

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise ArgumentError(f"layers must be barenet Layer objects, got {layer!r}")
        self.layers.append(layer)
        self._flat = None

    # ---- set-up ---------------------------------------------------------------------
    def compile(
        self,
        loss: str | losses_mod.Loss = "cross_entropy",
        optimizer: str | optim.Optimizer = "adam",
        metrics: Sequence[str] = ("accuracy",),
    ) -> None:
        """Choose the loss, the optimizer and the metrics reported by fit and evaluate."""
        self.loss = losses_mod.get(loss)
        self.optimizer = optim.get(optimizer)
        if isinstance(metrics, str):
            metrics = [metrics]
        for m in metrics:
            if m not in _METRICS:
                raise ArgumentError(f"metrics must be among {', '.join(_METRICS)}; got {m!r}")
            if m == "accuracy" and self.loss.kind == "regression":
                raise ArgumentError(
                    f"metric 'accuracy' needs a classification loss, not {self.loss!r}"
                )
        self.metrics = list(metrics)

    @property
    def dtype(self) -> np.dtype:
        dtypes = {p.dtype for layer in self.layers for p in layer.params.values()}
        if len(dtypes) > 1:
            raise ArgumentError(
                f"all parameters must share one dtype, found {sorted(map(str, dtypes))}"
            )
        return dtypes.pop() if dtypes else np.dtype(np.float32)

    def _fused(self) -> bool:
        """Whether the last layer is the loss's own activation (Softmax before CrossEntropy),
        which training skips so the loss sees logits and its gradient stays ``(p - y) / N``."""
        assert self.loss is not None
        kind = self.loss.fuses_with
        return bool(self.layers) and kind is not None and isinstance(self.layers[-1], kind)

    def _require_compiled(self) -> tuple[losses_mod.Loss, optim.Optimizer]:
        if self.loss is None or self.optimizer is None:
            raise BarenetError("call model.compile(loss, optimizer) before fit or evaluate")
        return self.loss, self.optimizer

    def _bind(self) -> tuple[np.ndarray, np.ndarray]:
        """Move every parameter and gradient into one contiguous buffer each (the layers keep
        views into them), so the optimizer updates all weights in a few vector operations."""
        if (
            self._flat is not None
            and self._flat_grads is not None
            and all(p.base is self._flat for layer in self.layers for p in layer.params.values())
        ):
            return self._flat, self._flat_grads
        dtype = self.dtype
        pairs = [(layer, name) for layer in self.layers for name in layer.params]
        total = sum(layer.params[name].size for layer, name in pairs)
        flat = np.empty(total, dtype=dtype)
        flat_grads = np.zeros(total, dtype=dtype)
        offset = 0
        for layer, name in pairs:
            p = layer.params[name]
            view = flat[offset : offset + p.size].reshape(p.shape)
            view[...] = p
            layer.params[name] = view
            layer.grads[name] = flat_grads[offset : offset + p.size].reshape(p.shape)
            offset += p.size
        self._flat, self._flat_grads = flat, flat_grads
        return flat, flat_grads

    def get_weights(self) -> np.ndarray:
        """A copy of all parameters as one flat array."""
        return self._bind()[0].copy()

    def set_weights(self, weights: np.ndarray) -> None:
        """Load parameters from a flat array made by ``get_weights``."""
        flat = self._bind()[0]
        weights = np.asarray(weights)
        if weights.shape != flat.shape:
            raise ArgumentError(f"weights must have shape {flat.shape}, got {weights.shape}")
        flat[...] = weights

    @property
    def num_params(self) -> int:
        return sum(layer.num_params() for layer in self.layers)

    def count_params(self) -> int:
        """``num_params`` under Keras's name."""
        return self.num_params

    # ---- data checks ------------------------------------------------------------------
    def _check_data(
        self,
        x: Any,
        y: Any = _NO_TARGETS,
        *,
        names: tuple[str, str] = ("x", "y"),
        warn: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``x`` as a contiguous array of the model's dtype, and ``y`` (when given) as an
        array with one target per sample, or ArgumentError naming the argument and what it
        holds. fit, evaluate and predict all read their data through here; ``warn`` (fit)
        also warns about unscaled inputs."""
        x_name, y_name = names
        xa = _as_array(x_name, x)
        if xa.dtype.kind not in "iuf":
            raise ArgumentError(
                f"{x_name} must hold real numbers (integers or floats), got dtype {xa.dtype}"
            )
        if xa.ndim < 2 or xa.size == 0:
            raise ArgumentError(
                f"{x_name} must be a non-empty batch of shape (N, ...), got shape {xa.shape}"
            )
        if self.input_shape is not None and xa.shape[1:] != self.input_shape:
            raise ArgumentError(
                f"{x_name} must have samples of shape {self.input_shape}, got {xa.shape[1:]}"
            )
        with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: inf
            out = np.ascontiguousarray(xa, dtype=self.dtype)
        if not math.isfinite(float(out.min())) or not math.isfinite(float(out.max())):
            if xa.dtype.kind == "f" and not np.isfinite(xa).all():
                raise ArgumentError(f"{x_name} contains NaN or infinite values")
            raise ArgumentError(f"{x_name} holds numbers too large for {self.dtype}")
        if warn:
            self._warn_if_unscaled(xa.dtype, out)
        if y is _NO_TARGETS:
            return out, None
        ya = _as_array(y_name, y)
        if ya.dtype.kind not in "biuf":
            raise ArgumentError(f"{y_name} must hold numbers, got dtype {ya.dtype}")
        if ya.ndim not in (1, 2):
            raise ArgumentError(
                f"{y_name} must hold one target per sample, shape (N,) or (N, K), "
                f"got shape {ya.shape}"
            )
        if len(ya) != len(out):
            raise ArgumentError(
                f"{x_name} and {y_name} differ in length: {len(out)} samples vs {len(ya)} targets"
            )
        if ya.dtype.kind == "f" and not np.isfinite(ya).all():
            raise ArgumentError(f"{y_name} contains NaN or infinite values")
        if ya.dtype.kind == "b":
            ya = ya.astype(np.uint8)
        if self.loss is not None and self.loss.kind == "multiclass":
            self._check_classes(y_name, ya, self._output_width(out.shape[1:]))
        return out, ya

    @staticmethod
    def _check_classes(name: str, y: np.ndarray, width: int | None) -> None:
        """Class ids in [0, classes) or one-hot rows as wide as the output: checked before
        training starts rather than by the loss at the batch where a bad one turns up."""
        if y.ndim == 2:
            if width is not None and y.shape[1] != width:
                raise ArgumentError(
                    f"{name} must be class ids (N,) or one-hot rows (N, {width}), "
                    f"got shape {y.shape}"
                )
            return
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            raise ArgumentError(f"{name} of shape (N,) must be integer class ids")
        low, high = float(y.min()), float(y.max())
        if low < 0 or (width is not None and high >= width):
            bound = f"[0, {width})" if width is not None else "[0, inf)"
            raise ArgumentError(
                f"{name} must be class ids in {bound}, got values in [{low:g}, {high:g}]"
            )

    @staticmethod
    def _warn_if_unscaled(dtype: np.dtype, x: np.ndarray) -> None:
        """Warn about integer or large inputs, judging by the first 10,000 samples: enough
        to see the scale, and cheap on every fit call."""
        if dtype.kind in "iu":
            warnings.warn(
                f"inputs are integers ({dtype}); scale them first, e.g. x / 255 for pixels",
                UserWarning,
                stacklevel=4,
            )
            return
        sample = x[:10_000]
        peak = max(-float(sample.min()), float(sample.max()))  # max |x|, no temporary array
        if peak > 10:
            warnings.warn(
                f"inputs reach |x| = {peak:.4g}; networks train best on inputs scaled to about "
                "[-1, 1] (e.g. pixels / 255, or standardised features)",
                UserWarning,
                stacklevel=4,
            )

    # ---- forward passes ---------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run every layer (including a final Softmax/Sigmoid, if any)."""
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def _logits(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Outputs the training loss reads: the fused activation is left out."""
        body = self.layers[:-1] if self._fused() else self.layers
        for layer in body:
            x = layer.forward(x, training=training)
        return x

    def input_gradient(self, x: Any, target: Any) -> np.ndarray:
        """The gradient of class ``target``'s score with respect to the input ``x``: how
        each input value (pixel) pushes that class up or down, a saliency map.

        The score is the class's *logit*, the output before a trailing Softmax or Sigmoid
        layer (the output itself when there is none): probabilities saturate, logits do
        not. The layers run in inference mode (no dropout, BatchNorm's running statistics)
        and back through barenet's own ``backward``; the weights and their gradient
        buffers are left as they were.

        Parameters
        ----------
        x : array (N, ...)
            A batch of inputs of the shape the model reads.
        target : int or array of int (N,)
            The class whose score is differentiated, one for all samples or one each.

        Returns
        -------
        array of x's shape, in the model's dtype: ``d score[n, target[n]] / d x[n]``.
        """
        from barenet.activations import Sigmoid, Softmax

        x, _ = self._check_data(x)
        scalar = isinstance(target, (int, np.integer)) and not isinstance(target, bool)
        ta = np.full(len(x), target) if scalar else _as_array("target", target)
        if ta.dtype.kind not in "iu" or ta.shape != (len(x),):
            raise ArgumentError(
                f"target must be a class id or {len(x)} class ids (N,), got "
                f"{ta.dtype} values of shape {ta.shape}"
            )
        tail = bool(self.layers) and isinstance(self.layers[-1], (Softmax, Sigmoid))
        body = self.layers[:-1] if tail else self.layers
        saved = [{k: g.copy() for k, g in layer.grads.items()} for layer in body]
        try:
            with self._threads(), np.errstate(over="ignore", invalid="ignore"):
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

    def _threads(self) -> AbstractContextManager[None]:
        """BLAS on one thread while a model with image layers runs (``barenet.parallel``).
        A network of dense layers keeps BLAS's own threads: its products are small and
        back to back, where BLAS's threads (which spin while they wait) hand over fastest."""
        if any(layer.splits_work for layer in self.layers):
            return parallel.blas_on_one_thread()
        return nullcontext()

    def _batches(self, x: np.ndarray, batch_size: int) -> Iterable[np.ndarray]:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size]

    def predict_proba(self, x: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (N, C) for classifiers; raw outputs for regression."""
        batch_size = check_int("batch_size", batch_size)
        x, _ = self._check_data(x)
        with self._threads(), np.errstate(over="ignore", invalid="ignore"):
            out = np.concatenate([self.forward(b) for b in self._batches(x, batch_size)])
            self._check_outputs("x", x, out)
            if self.loss is not None and self.loss.from_logits and not self._fused():
                if self.loss.kind == "multiclass":
                    return softmax(out, axis=1)  # logits near 3e38 overflow in x - max
                if self.loss.kind == "binary":
                    return sigmoid(out)
        return out

    def predict(self, x: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Class ids (N,) for a multi-class model, 0/1 for a binary one, outputs otherwise."""
        out = self.predict_proba(x, batch_size=batch_size)
        kind = self.loss.kind if self.loss is not None else "multiclass"
        if kind == "multiclass":
            return out.argmax(axis=1)
        if kind == "binary":
            labels = (out > 0.5).astype(np.int64)
            return labels.reshape(len(labels)) if labels.shape[1:] == (1,) else labels
        return out

    def _metric(self, name: str, outputs: np.ndarray, y: np.ndarray) -> float:
        assert self.loss is not None
        if name == "accuracy":
            if self.loss.kind == "multiclass":
                return accuracy(y, outputs.argmax(axis=1))
            threshold = 0.0 if self.loss.from_logits or self._fused() else 0.5
            return float(np.mean((outputs > threshold) == (y.reshape(outputs.shape) > 0.5)))
        diff = outputs - y.reshape(outputs.shape)
        return float(np.abs(diff).mean() if name == "mae" else np.square(diff).mean())

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 1024) -> dict[str, float]:
        """Loss (with regularisation penalties) and metrics over the whole of ``x``."""
        loss_fn, _ = self._require_compiled()
        batch_size = check_int("batch_size", batch_size)
        x, y = self._check_data(x, y)
        assert y is not None
        train_loss = loss_fn.on_logits() if self._fused() else loss_fn
        totals = dict.fromkeys(["loss", *self.metrics], 0.0)
        # Overflow shows as a NaN or infinite output (refused) or loss (reported as is).
        with self._threads(), np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, len(x), batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                out = self._logits(xb)
                self._check_outputs("x", xb, out)
                totals["loss"] += train_loss.forward(out, yb) * len(xb)
                for m in self.metrics:
                    totals[m] += self._metric(m, out, yb) * len(xb)
        results = {k: v / len(x) for k, v in totals.items()}
        results["loss"] += self._penalty()
        return results

    @staticmethod
    def _check_outputs(name: str, x: np.ndarray, out: np.ndarray) -> None:
        """Refuse inputs so large that the network's outputs overflow."""
        if not np.isfinite(out).all():
            peak = max(-float(x.min()), float(x.max()))
            raise ArgumentError(
                f"{name} drives the network's outputs to NaN or infinity (|{name}| up to "
                f"{peak:.3g}); scale the inputs to about [-1, 1]"
            )

    def _penalty(self) -> float:
        return sum(layer.penalty() for layer in self.layers)

    # ---- training -----------------------------------------------------------------------
    def fit(
        self,
        x: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        seed: int | None = None,
        callbacks: Sequence[Callback] = (),
        verbose: int | str = "auto",
        initial_epoch: int = 0,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> History:
        """Train for ``epochs`` passes over ``(x, y)`` in mini-batches.

        ``validation_split`` holds out the *last* fraction of ``x`` (before shuffling).
        ``seed`` fixes the shuffling and dropout masks: each epoch draws from a generator
        seeded by ``(seed, epoch)``, so resuming at ``initial_epoch`` from a checkpoint
        repeats exactly what an uninterrupted run would have done.
        ``augment(x_batch, rng) -> x_batch`` transforms each training batch (e.g. random
        shifts of images); it draws from the epoch's generator, so it is seeded too.
        A NaN or infinite loss (or weights) stops training with ``TrainingError`` and
        restores everything training changes — weights, BatchNorm's running statistics,
        the optimizer's moments, step count and learning rate — to the end of the last
        complete epoch, so a retry (with a lower rate, say) starts from a sound state.
        ``x``, ``y`` and the options are checked first; bad ones raise ``ArgumentError``.
        """
        loss_fn, optimizer = self._require_compiled()
        epochs = check_int("epochs", epochs)
        batch_size = check_int("batch_size", batch_size)
        initial_epoch = check_int("initial_epoch", initial_epoch, minimum=0)
        if not is_real(validation_split) or not 0 <= validation_split < 1:
            raise ArgumentError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if validation_data is not None and validation_split:
            raise ArgumentError("give validation_data or validation_split, not both")
        if seed is not None:
            seed = check_int("seed", seed, minimum=0)
        if augment is not None and not callable(augment):
            raise ArgumentError(
                f"augment must be a function (x_batch, rng) -> x_batch, got {augment!r}"
            )
        given: list[Any] = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        for cb in given:
            if not isinstance(cb, Callback):
                raise ArgumentError(f"callbacks must be barenet Callback objects, got {cb!r}")
        x, y = self._check_data(x, y, warn=True)
        assert y is not None
        if self.input_shape is None:
            self.input_shape = x.shape[1:]
        if validation_split:
            (x, y), validation_data = split_off(x, y, validation_split, "validation_split")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ArgumentError("validation_data must be a pair (x_val, y_val)")
            validation_data = self._check_data(
                *validation_data, names=("validation_data[0]", "validation_data[1]")
            )

        flat, flat_grads = self._bind()
        base_seed = int(seed) if seed is not None else int(np.random.default_rng().integers(2**62))
        train_loss = loss_fn.on_logits() if self._fused() else loss_fn
        body = self.layers[:-1] if self._fused() else self.layers
        # Backpropagation stops at the first layer with parameters: no one needs the
        # gradient with respect to the input images.
        learners = [i for i, layer in enumerate(body) if layer.params]
        if not learners:
            raise ArgumentError("the model has no parameters to train")
        first_learner = learners[0]
        n = len(x)
        steps = math.ceil(n / batch_size)
        history = self.history = History()
        cbs: list[Callback] = [history]
        if verbose not in (0, False, "silent"):
            cbs.append(ProgressBar(initial_epoch + epochs, steps))
        cbs.extend(given)
        for cb in cbs:
            cb.model = self
        self.stop_training = False
        xb_buffer = np.empty((min(batch_size, n), *x.shape[1:]), dtype=x.dtype)
        for cb in cbs:
            cb.on_train_begin({})
        # Overflow inside a diverging step is reported once, by the finite-loss guard below.
        saved: _TrainingState | None = None
        with np.errstate(over="ignore", invalid="ignore"), self._threads():
            try:
                for epoch in range(initial_epoch, initial_epoch + epochs):
                    saved = self._training_state()
                    rng = np.random.default_rng([base_seed, epoch])
                    for i, layer in enumerate(self.layers):
                        layer.reseed(np.random.default_rng([base_seed, epoch, i + 1]))
                    for cb in cbs:
                        cb.on_epoch_begin(epoch, {})
                    start = time.perf_counter()
                    order = rng.permutation(n) if shuffle else np.arange(n)
                    loss_sum, metric_sums, seen = 0.0, dict.fromkeys(self.metrics, 0.0), 0
                    for b in range(steps):
                        idx = order[b * batch_size : (b + 1) * batch_size]
                        xb = np.take(x, idx, axis=0, out=xb_buffer[: len(idx)])
                        yb = y[idx]
                        if augment is not None:
                            xb = augment(xb, rng)
                        out = xb
                        for layer in body:
                            out = layer.forward(out, training=True)
                        loss = train_loss.forward(out, yb) + self._penalty()
                        if not math.isfinite(loss):
                            raise TrainingError(
                                f"loss became {loss} at epoch {epoch + 1}, batch {b + 1}; weights "
                                f"restored to the start of epoch {epoch + 1}. Try a lower learning "
                                f"rate (lr={optimizer.current_lr:.3g}) or check the inputs"
                            )
                        grad = train_loss.backward()
                        for layer in reversed(body[first_learner + 1 :]):
                            grad = layer.backward(grad)
                        body[first_learner].param_backward(grad)
                        if b == 0 and (unbound := unbound_gradients(self.layers, flat, flat_grads)):
                            raise TrainingError(unbound)  # a layer that would never train
                        optimizer.step([flat], [flat_grads])
                        seen += len(idx)
                        loss_sum += loss * len(idx)
                        logs = {"loss": loss_sum / seen}
                        for m in self.metrics:
                            metric_sums[m] += self._metric(m, out, yb) * len(idx)
                            logs[m] = metric_sums[m] / seen
                        for cb in cbs:
                            cb.on_batch_end(b, logs)
                    if not self._finite():  # the epoch's last step overflowed
                        raise TrainingError(
                            f"weights became NaN or infinite at epoch {epoch + 1}, batch {steps}; "
                            f"weights restored to the start of epoch {epoch + 1}. Try a lower "
                            f"learning rate (lr={optimizer.current_lr:.3g})"
                        )
                    logs = {"loss": loss_sum / n, **{m: s / n for m, s in metric_sums.items()}}
                    if validation_data is not None:
                        val = self.evaluate(*validation_data, batch_size=max(batch_size, 1024))
                        logs.update({f"val_{k}": v for k, v in val.items()})
                    logs["lr"] = optimizer.current_lr
                    logs["time"] = time.perf_counter() - start
                    if epoch == initial_epoch and steps >= 50:
                        self._warn_if_at_chance(logs)
                    for cb in cbs:
                        cb.on_epoch_end(epoch, logs)
                    if self.stop_training:
                        break
            except TrainingError:
                # After the callbacks' on_train_end, which may set weights of their own.
                if saved is not None:
                    self._close_callbacks(cbs)
                    self._restore_training_state(saved)
                raise
            finally:
                self._close_callbacks(cbs)
        return history

    @staticmethod
    def _close_callbacks(cbs: list[Callback]) -> None:
        while cbs:
            cbs.pop(0).on_train_end({})

    def _training_state(self) -> _TrainingState:
        """A copy of everything a training step changes: the weights, the layers' buffers
        (BatchNorm's running statistics) and the optimizer's state (moments, step count,
        learning rate), for ``fit`` to roll back to when the loss turns NaN."""
        assert self.optimizer is not None
        return _TrainingState(
            weights=self._bind()[0].copy(),
            buffers=[{k: a.copy() for k, a in layer.state().items()} for layer in self.layers],
            optimizer=self.optimizer.snapshot(),
        )

    def _restore_training_state(self, saved: _TrainingState) -> None:
        assert self.optimizer is not None
        self._bind()[0][...] = saved.weights
        for layer, buffers in zip(self.layers, saved.buffers, strict=True):
            for name, a in layer.state().items():
                a[...] = buffers[name]
        self.optimizer.restore(saved.optimizer)

    def _finite(self) -> bool:
        """Whether every weight and buffer is a finite number."""
        arrays = [self._bind()[0], *(a for layer in self.layers for a in layer.state().values())]
        return all(np.isfinite(a).all() for a in arrays)

    def _warn_if_at_chance(self, logs: dict[str, float]) -> None:
        assert self.loss is not None
        if self.loss.kind != "multiclass" or "accuracy" not in logs:
            return
        width = self._output_width()
        if width is None or width < 3:
            return
        if logs["accuracy"] < 1.2 / width:
            warnings.warn(
                f"training accuracy is {logs['accuracy']:.1%} after the first epoch, about "
                f"chance for {width} classes: check the labels, the input scaling and the "
                "learning rate",
                UserWarning,
                stacklevel=3,
            )

    def _output_width(self, shape: tuple[int, ...] | None = None) -> int | None:
        """Width of the output for samples of ``shape`` (default: the model's input
        shape), or None when it is unknown or not a flat vector."""
        shape = shape if shape is not None else self.input_shape
        if shape is None:
            return None
        try:
            for layer in self.layers:
                if _says_nothing_of_its_shape(layer):
                    return None
                shape = layer.output_shape(shape)
        except (BarenetError, ValueError, TypeError, IndexError):
            return None  # samples this model cannot take: its layers say so on the way
        return shape[0] if len(shape) == 1 else None

    def diagnose(self, x: Any, y: Any, **options: Any) -> Report:
        """Check gradients, layer contracts and training health on one batch, on copies of
        the model; see ``barenet.doctor.diagnose``."""
        return diagnose(self, x, y, **options)

    # ---- description and files ----------------------------------------------------------
    def summary(self, print_fn: Any = print) -> None:
        """Print each layer, its output shape and parameter count (Keras-style)."""
        shape = self.input_shape
        if shape is None and self.layers and "in_features" in self.layers[0].get_config():
            shape = (self.layers[0].get_config()["in_features"],)
        rows = [("layer", "output shape", "params")]
        for layer in self.layers:
            shape = layer.output_shape(shape) if shape is not None else None
            out = "(N, " + ", ".join(map(str, shape)) + ")" if shape is not None else "?"
            rows.append((repr(layer), out, f"{layer.num_params():,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        line = "-" * (sum(widths) + 4)
        print_fn(line)
        for i, r in enumerate(rows):
            print_fn(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}")
            if i == 0:
                print_fn(line)
        print_fn(line)
        print_fn(f"total parameters: {self.num_params:,}")

    def get_config(self) -> dict[str, Any]:
        """Architecture, loss, optimizer and metrics as JSON-serialisable data."""
        return {
            "layers": [{"class": type(l).__name__, "config": l.get_config()} for l in self.layers],
            "loss": None
            if self.loss is None
            else {"class": type(self.loss).__name__, "config": self.loss.get_config()},
            "optimizer": None
            if self.optimizer is None
            else {"class": type(self.optimizer).__name__, "config": self.optimizer.get_config()},
            "metrics": self.metrics,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def save(
        self, path: str | Path, *, include_optimizer: bool = False, epoch: int | None = None
    ) -> Path:
        """Write one ``.npz`` (parameters + JSON config), atomically. See
        ``barenet.modelfile``."""
        return save_model(self, path, include_optimizer=include_optimizer, epoch=epoch)

    def to_torch(self) -> Any:
        """An equivalent ``torch.nn.Sequential`` in eval mode (see ``barenet.interop``)."""
        from barenet.interop import to_torch

        return to_torch(self)

    def __repr__(self) -> str:
        return f"Sequential([{', '.join(map(repr, self.layers))}])"
