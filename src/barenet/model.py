"""``Sequential``: a stack of layers with compile / fit / evaluate / predict / save.

The training step is public: ``train_step(x, y)`` takes one optimizer step on a batch and
``gradients(x, y)`` returns the loss gradients without one; ``fit`` is a loop over the
same step (``barenet.fit_loop``). What the outputs mean — probabilities, labels, metrics
— is the loss's business (``barenet.losses.Loss``); the data checks are in
``barenet.data_checks``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from barenet import data_checks, fit_loop, optim, parallel, saliency, step
from barenet import losses as losses_mod
from barenet.callbacks import Callback, History
from barenet.doctor import Report, diagnose
from barenet.errors import ArgumentError, StateError, TrainingError, check_int
from barenet.init import as_rng
from barenet.layers import Layer
from barenet.modelfile import save_model
from barenet.splits import split_off

__all__ = ["Sequential"]


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
        metrics: Sequence[str] | None = None,
    ) -> None:
        """Choose the loss, the optimizer and the metrics reported by fit and evaluate
        (by default the loss's own: accuracy for a classifier)."""
        self.loss = losses_mod.get(loss)
        self.optimizer = optim.get(optimizer)
        if metrics is None:
            metrics = self.loss.default_metrics
        elif isinstance(metrics, str):
            metrics = [metrics]
        for m in metrics:
            if m not in self.loss.metrics:
                raise ArgumentError(
                    f"metrics must be among {', '.join(self.loss.metrics)} for "
                    f"{self.loss!r}; got {m!r}"
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
        kind = self.loss.fuses_with if self.loss is not None else None
        return bool(self.layers) and kind is not None and isinstance(self.layers[-1], kind)

    def _training_path(self) -> step.TrainingPath:
        """The layers training runs and the loss it reads: a trailing activation the loss
        fuses with is left out, and the loss then reads logits. Training, evaluation, the
        metrics and ``gradients`` all go through here."""
        loss = self._require_loss("training or evaluation")
        if self._fused():
            return self.layers[:-1], loss.on_logits()
        return self.layers, loss

    def _require_compiled(
        self, what: str = "fit or evaluate"
    ) -> tuple[losses_mod.Loss, optim.Optimizer]:
        """The loss and optimizer, or StateError when ``compile`` has not chosen them."""
        if self.loss is None or self.optimizer is None:
            raise StateError(f"call model.compile(loss, optimizer) before {what}")
        return self.loss, self.optimizer

    def _require_loss(self, what: str) -> losses_mod.Loss:
        """The loss, or StateError when ``compile`` has not chosen one."""
        if self.loss is None:
            raise StateError(f"call model.compile(loss, optimizer) before {what}")
        return self.loss

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

    def get_buffers(self) -> list[dict[str, np.ndarray]]:
        """A copy of every layer's non-trainable arrays (``Layer.state()``: BatchNorm's
        running statistics), one dict per layer; they belong with the weights."""
        return [{k: a.copy() for k, a in layer.state().items()} for layer in self.layers]

    def set_buffers(self, buffers: list[dict[str, np.ndarray]]) -> None:
        """Put back arrays made by ``get_buffers``, in place."""
        for layer, saved in zip(self.layers, buffers, strict=True):
            for k, a in layer.state().items():
                a[...] = saved[k]

    @property
    def num_params(self) -> int:
        return sum(layer.num_params() for layer in self.layers)

    def count_params(self) -> int:
        """``num_params`` under Keras's name."""
        return self.num_params

    # ---- data checks (barenet.data_checks) ------------------------------------------------
    def _check_x(
        self, x: Any, name: str = "x", *, warn: bool = False, finite: bool = True
    ) -> np.ndarray:
        """``x`` as a contiguous batch in the model's dtype, of the model's sample shape
        (``finite``: see ``data_checks.check_inputs``)."""
        return data_checks.check_inputs(
            x, name, self.dtype, self.input_shape, warn=warn, finite=finite
        )

    def _check_xy(
        self, x: Any, y: Any, names: tuple[str, str] = ("x", "y"), *, warn: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``x`` as ``_check_x`` gives it and ``y`` as one target per sample, which the
        loss (when compiled) can read."""
        out = self._check_x(x, names[0], warn=warn)
        ya = data_checks.check_targets(y, names[1], len(out), names[0])
        if self.loss is not None:
            self.loss.check_targets(names[1], ya, self._output_width(out.shape[1:]))
        return out, ya

    def _output_width(self, shape: tuple[int, ...] | None = None) -> int | None:
        """Width of the output for samples of ``shape`` (default: the model's input
        shape), or None when it is unknown or not a flat vector."""
        return data_checks.output_width(
            self.layers, shape if shape is not None else self.input_shape
        )

    # ---- the training step ------------------------------------------------------------
    def train_step(self, x: Any, y: Any) -> float:
        """One training step on the batch ``(x, y)``: forward (training mode), loss,
        backward and one optimizer step. Returns the loss, with regularisation penalties.

        ``fit`` takes the same step for each of its batches, so one ``train_step`` on a
        batch equals one epoch of ``fit(x, y, batch_size=len(x), shuffle=False)`` bit for
        bit (Dropout draws from the layers' current generators; fit reseeds them first).
        A loss that is not finite raises ``TrainingError`` before the weights change.
        """
        optimizer = self._require_compiled("train_step")[1]
        x, y = self._check_xy(x, y)
        path = self._training_path()
        step.first_learner(path[0])
        with np.errstate(over="ignore", invalid="ignore"), self._threads():
            loss, _ = step.train(self, optimizer, x, y, path, check_bound=True)
        if not math.isfinite(loss):
            raise TrainingError(
                f"loss became {loss}; the weights are unchanged. Try a lower learning rate "
                f"(lr={optimizer.current_lr:.3g}) or check the inputs"
            )
        if self.input_shape is None:
            self.input_shape = x.shape[1:]
        return loss

    def gradients(self, x: Any, y: Any, *, training: bool = True) -> dict[str, np.ndarray]:
        """The gradient of the training loss (with regularisation penalties) on the batch
        ``(x, y)`` for every parameter, keyed ``"<layer>/<param>"`` with the layer names
        of ``barenet.doctor.layer_names`` (``"dense_1/weight"``), as the next
        ``train_step`` would apply them; no optimizer step is taken.

        ``training`` runs the layers as training does (Dropout drops, BatchNorm uses the
        batch's statistics); False runs them as ``predict`` does. The weights and
        BatchNorm's running statistics are left as they were; the layers' ``grads`` hold
        the returned gradients.
        """
        path = self._training_path()
        x, y = self._check_xy(x, y)
        with np.errstate(over="ignore", invalid="ignore"), self._threads():
            return step.gradients(self, x, y, path, training=training)

    # ---- forward passes ---------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run every layer (including a final Softmax/Sigmoid, if any)."""
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def _logits(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Outputs the training loss reads: the fused activation is left out."""
        for layer in self._training_path()[0]:
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
        return saliency.input_gradient(self, self._check_x(x), target)

    def _threads(self) -> AbstractContextManager[None]:
        """What to run inside while this model works: ``barenet.parallel`` decides."""
        return parallel.threads_for(self.layers)

    def _batches(self, x: np.ndarray, batch_size: int) -> Iterable[np.ndarray]:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size]

    def predict_proba(self, x: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (N, C) for classifiers; raw outputs for regression."""
        batch_size = check_int("batch_size", batch_size)
        given, x = x, self._check_x(x, finite=False)  # the outputs are checked instead
        with self._threads(), np.errstate(over="ignore", invalid="ignore"):
            if len(x) <= batch_size:  # one batch: no copy into a list and out again
                out = self.forward(x)
            else:
                out = np.concatenate([self.forward(b) for b in self._batches(x, batch_size)])
            if not np.isfinite(out).all():
                self._check_x(given)  # a NaN or infinite input: say so
                self._check_outputs("x", x, out)
            if self.loss is not None and not self._fused():  # else forward ends in it
                return self.loss.probabilities(out)
        return out

    def predict(self, x: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Class ids (N,) for a multi-class model, 0/1 for a binary one, outputs otherwise
        (the loss says which; a model without one is taken to be multi-class)."""
        out = self.predict_proba(x, batch_size=batch_size)
        loss = self.loss if self.loss is not None else losses_mod.CrossEntropy()
        return loss.labels(out)

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 1024) -> dict[str, float]:
        """Loss (with regularisation penalties) and metrics over the whole of ``x``."""
        self._require_compiled("evaluate")
        batch_size = check_int("batch_size", batch_size)
        x, y = self._check_xy(x, y)
        layers, train_loss = self._training_path()
        totals = dict.fromkeys(["loss", *self.metrics], 0.0)
        # Overflow shows as a NaN or infinite output (refused) or loss (reported as is).
        with self._threads(), np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, len(x), batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                out = xb
                for layer in layers:
                    out = layer.forward(out, training=False)
                self._check_outputs("x", xb, out)
                totals["loss"] += train_loss.forward(out, yb) * len(xb)
                for m in self.metrics:
                    totals[m] += train_loss.metric(m, out, yb) * len(xb)
        results = {k: v / len(x) for k, v in totals.items()}
        results["loss"] += self._penalty()
        return results

    @staticmethod
    def _check_outputs(name: str, x: np.ndarray, out: np.ndarray) -> None:
        """Refuse inputs so large that the network's outputs overflow."""
        if not np.isfinite(out).all():
            peak = data_checks.peak_magnitude(x)
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
        """Train for ``epochs`` passes over ``(x, y)`` in mini-batches, one ``train_step``
        each (see ``barenet.fit_loop``).

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
        self._require_compiled("fit")
        options = fit_loop.check_options(
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            validation_split=validation_split,
            shuffle=shuffle,
            seed=seed,
            callbacks=callbacks,
            verbose=verbose,
            initial_epoch=initial_epoch,
            augment=augment,
        )
        x, y = self._check_xy(x, y, warn=True)
        if self.input_shape is None:
            self.input_shape = x.shape[1:]
        if options.validation_split:
            (x, y), validation_data = split_off(x, y, options.validation_split, "validation_split")
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ArgumentError("validation_data must be a pair (x_val, y_val)")
            validation_data = self._check_xy(
                *validation_data, names=("validation_data[0]", "validation_data[1]")
            )
        step.first_learner(self._training_path()[0])
        return fit_loop.run(self, x, y, validation_data, options)

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
