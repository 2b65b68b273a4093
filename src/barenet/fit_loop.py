"""The loop behind ``Sequential.fit``: epochs of training steps, with metrics, callbacks,
validation, and the roll-back when the loss turns NaN.

``Sequential.fit`` checks its options (``check_options``) and data, then hands them to
``run``. Each batch is one ``barenet.step.train`` (forward, loss, backward, optimizer
step), the step ``Sequential.train_step`` takes, so the two agree bit for bit.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from barenet import parallel, step
from barenet.callbacks import Callback, History, ProgressBar
from barenet.data_checks import user_stacklevel
from barenet.errors import ArgumentError, TrainingError, check_int, check_range

if TYPE_CHECKING:
    from barenet.model import Sequential
    from barenet.optim import Optimizer

__all__ = ["FitOptions", "TrainingState", "check_options", "run"]

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Data = tuple[np.ndarray, np.ndarray]  # (x, y)


@dataclass(frozen=True)
class FitOptions:
    """``fit``'s options, checked."""

    epochs: int
    batch_size: int
    validation_split: float
    shuffle: bool
    seed: int | None
    callbacks: list[Callback]
    verbose: int | str
    initial_epoch: int
    augment: Augment | None


def check_options(
    *,
    epochs: Any,
    batch_size: Any,
    validation_data: Any,
    validation_split: Any,
    shuffle: bool,
    seed: Any,
    callbacks: Any,
    verbose: int | str,
    initial_epoch: Any,
    augment: Any,
) -> FitOptions:
    """``fit``'s options as ``FitOptions``, or ArgumentError naming the bad one."""
    epochs = check_int("epochs", epochs)
    batch_size = check_int("batch_size", batch_size)
    initial_epoch = check_int("initial_epoch", initial_epoch, minimum=0)
    validation_split = check_range("validation_split", validation_split, "[0, 1)")
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
    return FitOptions(
        epochs, batch_size, validation_split, shuffle, seed, given, verbose, initial_epoch, augment
    )


@dataclass
class TrainingState:
    """A copy of everything a training step changes: the weights, the layers' buffers
    (BatchNorm's running statistics) and the optimizer's state (moments, step count,
    learning rate), for ``fit`` to roll back to when the loss turns NaN."""

    weights: np.ndarray
    buffers: list[dict[str, np.ndarray]]
    optimizer: dict[str, Any]

    @classmethod
    def of(cls, model: Sequential, optimizer: Optimizer) -> TrainingState:
        return cls(
            weights=model.get_weights(),
            buffers=model.get_buffers(),
            optimizer=optimizer.snapshot(),
        )

    def restore(self, model: Sequential, optimizer: Optimizer) -> None:
        model.set_weights(self.weights)
        model.set_buffers(self.buffers)
        optimizer.restore(self.optimizer)


def finite(model: Sequential) -> bool:
    """Whether every weight and buffer of ``model`` is a finite number."""
    arrays = [model._bind()[0], *(a for layer in model.layers for a in layer.state().values())]
    return all(np.isfinite(a).all() for a in arrays)


def run(
    model: Sequential, x: np.ndarray, y: np.ndarray, validation: Data | None, o: FitOptions
) -> History:
    """Train ``model`` on checked data; see ``Sequential.fit``."""
    return _Fit(model, x, y, validation, o).run()


class _Fit:
    """One call of ``fit``: the data and options, and what every epoch reuses."""

    def __init__(
        self,
        model: Sequential,
        x: np.ndarray,
        y: np.ndarray,
        validation: Data | None,
        o: FitOptions,
    ) -> None:
        self.model, self.x, self.y, self.validation, self.o = model, x, y, validation, o
        self.optimizer = model._require_compiled("fit")[1]
        model._bind()
        self.path = model._training_path()
        self.base_seed = (
            int(o.seed) if o.seed is not None else int(np.random.default_rng().integers(2**62))
        )
        self.steps = math.ceil(len(x) / o.batch_size)
        self.buffer = np.empty((min(o.batch_size, len(x)), *x.shape[1:]), dtype=x.dtype)
        history = model.history = History()
        self.callbacks: list[Callback] = [history]
        if o.verbose not in (0, False, "silent"):
            self.callbacks.append(ProgressBar(o.initial_epoch + o.epochs, self.steps))
        self.callbacks.extend(o.callbacks)
        for cb in self.callbacks:
            cb.model = model
        self.history = history

    def run(self) -> History:
        model, cbs, start = self.model, self.callbacks, self.o.initial_epoch
        model.stop_training = False
        for cb in cbs:
            cb.on_train_begin({})
        # Overflow inside a diverging step is reported once, by the finite-loss guard.
        saved: TrainingState | None = None
        with (
            np.errstate(over="ignore", invalid="ignore"),
            model._threads(),
            parallel.Tuner(model.layers) as self.tuner,
        ):
            try:
                for epoch in range(start, start + self.o.epochs):
                    saved = TrainingState.of(model, self.optimizer)
                    logs = self.epoch(epoch)
                    if epoch == start and self.steps >= 50:
                        _warn_if_at_chance(model, logs)
                    for cb in cbs:
                        cb.on_epoch_end(epoch, logs)
                    if model.stop_training:
                        break
            except TrainingError:
                # After the callbacks' on_train_end, which may set weights of their own.
                if saved is not None:
                    _close(cbs)
                    saved.restore(model, self.optimizer)
                raise
            finally:
                _close(cbs)
        return self.history

    def epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data; the epoch's logs."""
        model, o, n = self.model, self.o, len(self.x)
        rng = np.random.default_rng([self.base_seed, epoch])
        for i, layer in enumerate(model.layers):
            layer.reseed(np.random.default_rng([self.base_seed, epoch, i + 1]))
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})
        start = time.perf_counter()
        order = rng.permutation(n) if o.shuffle else np.arange(n)
        sums = dict.fromkeys(["loss", *model.metrics], 0.0)
        seen = 0
        for b in range(self.steps):
            idx = order[b * o.batch_size : (b + 1) * o.batch_size]
            # mode='clip': the indices are a permutation, always in range, and 'raise'
            # would gather into a temporary first and copy it (NumPy buffers out= then).
            xb = np.take(self.x, idx, axis=0, out=self.buffer[: len(idx)], mode="clip")
            yb = self.y[idx]
            if o.augment is not None:
                xb = o.augment(xb, rng)
            loss, out = self.tuner.step(
                step.train, model, self.optimizer, xb, yb, self.path, check_bound=b == 0
            )
            if not math.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss} at epoch {epoch + 1}, batch {b + 1}; weights "
                    f"restored to the start of epoch {epoch + 1}. Try a lower learning "
                    f"rate (lr={self.optimizer.current_lr:.3g}) or check the inputs"
                )
            seen += len(idx)
            logs = _running_logs(sums, self.path[1], loss, out, yb, model.metrics, seen)
            for cb in self.callbacks:
                cb.on_batch_end(b, logs)
        if not finite(model):  # the epoch's last step overflowed
            raise TrainingError(
                f"weights became NaN or infinite at epoch {epoch + 1}, batch {self.steps}; "
                f"weights restored to the start of epoch {epoch + 1}. Try a lower "
                f"learning rate (lr={self.optimizer.current_lr:.3g})"
            )
        logs = {k: s / n for k, s in sums.items()}
        if self.validation is not None:
            val = model.evaluate(*self.validation, batch_size=max(o.batch_size, 1024))
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["lr"] = self.optimizer.current_lr
        logs["time"] = time.perf_counter() - start
        return logs


def _running_logs(
    sums: dict[str, float],
    loss_fn: Any,
    loss: float,
    out: np.ndarray,
    yb: np.ndarray,
    metrics: Sequence[str],
    seen: int,
) -> dict[str, float]:
    """Add one batch to the epoch's sums (weighted by its size); the running means."""
    size = len(yb)
    sums["loss"] += loss * size
    logs = {"loss": sums["loss"] / seen}
    for m in metrics:
        sums[m] += loss_fn.metric(m, out, yb) * size
        logs[m] = sums[m] / seen
    return logs


def _close(cbs: list[Callback]) -> None:
    """``on_train_end`` for each callback, once."""
    while cbs:
        cbs.pop(0).on_train_end({})


def _warn_if_at_chance(model: Sequential, logs: dict[str, float]) -> None:
    """Warn when the first epoch's accuracy is about that of guessing among 3 or more
    classes: the labels, the input scaling or the learning rate is likely wrong."""
    width = model._output_width()
    if model.loss is None or "accuracy" not in logs or width is None or width < 3:
        return
    chance = model.loss.chance_level(width)
    if chance is not None and logs["accuracy"] < 1.2 * chance:
        warnings.warn(
            f"training accuracy is {logs['accuracy']:.1%} after the first epoch, about "
            f"chance for {width} classes: check the labels, the input scaling and the "
            "learning rate",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
