"""Callbacks: hooks into ``Sequential.fit`` — history, progress, early stopping,
checkpoints and learning-rate schedules by epoch."""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from barenet.activations import ReLU
from barenet.doctor import layer_names, saturated_fraction
from barenet.errors import ArgumentError, check_int

if TYPE_CHECKING:
    from barenet.model import Sequential

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "Monitor",
    "ProgressBar",
]

Logs = dict[str, float]


class Callback:
    """Base class; ``fit`` sets ``self.model`` before training starts."""

    model: Sequential

    def on_train_begin(self, logs: Logs) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs) -> None: ...
    def on_batch_end(self, batch: int, logs: Logs) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs) -> None: ...
    def on_train_end(self, logs: Logs) -> None: ...


class History(Callback):
    """Per-epoch logs: ``history.history["loss"]`` is the list of training losses, and so
    on for ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr`` and ``time``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _fmt(logs: Logs) -> str:
    parts = []
    for key, value in logs.items():
        if key in ("epoch", "time"):
            continue
        parts.append(f"{key}={value:.4g}" if key == "lr" else f"{key}={value:.4f}")
    return " ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch on stderr with the running loss and accuracy. When stderr is not
    a terminal it prints one line per epoch instead."""

    def __init__(self, epochs: int, steps: int, *, stream: Any = None) -> None:
        self.epochs, self.steps = epochs, steps
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: Any = None

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        self._start = time.perf_counter()
        if self.interactive:
            self._bar = tqdm(
                total=self.steps,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
            )

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if batch % 20 == 0 or batch == self.steps - 1:
                self._bar.set_postfix_str(_fmt(logs), refresh=False)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(_fmt(logs))
            self._bar.close()
            self._bar = None
        else:
            seconds = time.perf_counter() - self._start
            print(
                f"epoch {epoch + 1}/{self.epochs} {seconds:.1f}s {_fmt(logs)}",
                file=self.stream,
                flush=True,
            )

    def on_train_end(self, logs: Logs) -> None:
        if self._bar is not None:
            self._bar.close()


def _alias(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    """The value given under ``name`` or under its other spelling ``alias`` (None when
    neither); both at once is an error, unless they agree."""
    if alias_value is None:
        return value
    if value is not None and value != alias_value:
        raise ArgumentError(f"{alias} is another name for {name}: give one of them, not both")
    return alias_value


class _Monitor(Callback):
    """Shared logic: watch one logged value and tell whether it improved."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode not in ("auto", "min", "max"):
            raise ArgumentError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

    def _value(self, logs: Logs) -> float:
        if self.monitor not in logs:
            raise ArgumentError(
                f"monitor={self.monitor!r} is not logged; available: {', '.join(logs)}"
            )
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best`` the model ends with the weights (and BatchNorm
    statistics) of its best epoch. ``restore_best_weights`` is Keras's name for
    ``restore_best`` and is accepted too."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        *,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool | None = None,
        restore_best_weights: bool | None = None,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        patience = check_int("patience", patience, minimum=0)
        restore = _alias("restore_best", restore_best, "restore_best_weights", restore_best_weights)
        self.patience, self.restore_best = patience, True if restore is None else bool(restore)
        self.wait = 0
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._best_weights: np.ndarray | None = None
        self._best_buffers: list[dict[str, np.ndarray]] = []

    def on_train_begin(self, logs: Logs) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait, self.best_epoch, self.stopped_epoch = 0, -1, None

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best_weights = self.model.get_weights()
                # BatchNorm's running statistics belong with the weights they were made by
                self._best_buffers = self.model.get_buffers()
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True

    def on_train_end(self, logs: Logs) -> None:
        if self.restore_best and self._best_weights is not None:
            self.model.set_weights(self._best_weights)
            self.model.set_buffers(self._best_buffers)


class Checkpoint(_Monitor):
    """Save the model (with optimizer state, so training can resume) after each epoch.

    ``path`` may contain ``{epoch}`` (1-based). With ``save_best_only`` a file is written
    only when ``monitor`` improves.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        include_optimizer: bool = True,
    ) -> None:
        super().__init__(monitor, mode, 0.0)
        self.path, self.save_best_only = str(path), save_best_only
        self.include_optimizer = include_optimizer
        self.saved: list[str] = []

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1)
        self.model.save(path, include_optimizer=self.include_optimizer, epoch=epoch + 1)
        self.saved.append(path)


class ModelCheckpoint(Checkpoint):
    """``Checkpoint`` under Keras's name, taking Keras's ``filepath``:
    ``ModelCheckpoint("best.npz", save_best_only=True)``."""

    def __init__(
        self,
        filepath: str | Path,
        *,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        include_optimizer: bool = True,
    ) -> None:
        super().__init__(
            filepath,
            monitor=monitor,
            save_best_only=save_best_only,
            mode=mode,
            include_optimizer=include_optimizer,
        )


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to ``fn(epoch, lr)``
    (``epoch`` from 0, ``lr`` the current base rate)."""

    def __init__(self, fn: Callable[[int, float], float]) -> None:
        self.fn = fn

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ArgumentError("LearningRateScheduler needs a compiled model")
        current = optimizer.lr if isinstance(optimizer.lr, float) else optimizer.current_lr
        lr = float(self.fn(epoch, current))
        if not math.isfinite(lr) or lr <= 0:
            raise ArgumentError(f"the schedule returned lr={lr!r} at epoch {epoch}")
        optimizer.lr = lr


class Monitor(Callback):
    """Health figures of every layer, per epoch, added to the History that ``fit`` returns::

        history = model.fit(x, y, epochs=5, callbacks=[bn.callbacks.Monitor()])
        history["monitor/dense_1/grad_norm"]     # mean gradient norm over each epoch

    For each layer with parameters: ``grad_norm`` (mean over the epoch's batches),
    ``weight_norm`` and ``weight_change`` (how far the epoch moved the weights, relative to
    their norm at its start); for each ReLU: ``dead`` (the share of units, or channels,
    that never fired during the epoch); for each sigmoid/tanh: ``saturated`` (the mean
    share of outputs within 0.01 of their bounds). The same lists are in ``self.history``.

    Warns once per layer when a ReLU layer dies (``dead`` above ``dead``) or a gradient
    explodes (not finite, or ``explode`` times its norm in the first epoch).
    """

    def __init__(self, *, dead: float = 0.9, explode: float = 1e3) -> None:
        self.dead, self.explode = float(dead), float(explode)
        self.history: dict[str, list[float]] = {}
        self.warned: set[str] = set()

    def on_train_begin(self, logs: Logs) -> None:
        self._names = layer_names(self.model.layers)
        self._first: dict[int, float] = {}

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        layers = self.model.layers
        self._start = {i: [p.copy() for p in l.params.values()] for i, l in enumerate(layers)}
        self._grad_sum = dict.fromkeys(range(len(layers)), 0.0)
        self._alive: dict[int, np.ndarray] = {}
        self._saturated: dict[int, float] = {}
        self._batches = 0

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        self._batches += 1
        for i, layer in enumerate(self.model.layers):
            if layer.params:
                total = sum(float(np.vdot(g, g)) for g in layer.grads.values())
                self._grad_sum[i] += math.sqrt(total) if total >= 0 else math.nan
            y = getattr(layer, "_y", None)
            if not isinstance(y, np.ndarray) or y.ndim < 2:
                continue
            if isinstance(layer, ReLU):
                fired = y.max(axis=tuple(a for a in range(y.ndim) if a != 1)) > 0
                self._alive[i] = fired | self._alive[i] if i in self._alive else fired
            share = saturated_fraction(layer, y)
            if share is not None:
                self._saturated[i] = self._saturated.get(i, 0.0) + share

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        figures: dict[str, float] = {}
        steps = max(self._batches, 1)
        for i, layer in enumerate(self.model.layers):
            name = self._names[i]
            if layer.params:
                grad = self._grad_sum[i] / steps
                now = list(layer.params.values())
                size = math.sqrt(sum(float(np.vdot(p, p)) for p in self._start[i]))
                moved = math.sqrt(
                    sum(
                        float(np.vdot(p - q, p - q))
                        for p, q in zip(now, self._start[i], strict=True)
                    )
                )
                figures[f"{name}/grad_norm"] = grad
                figures[f"{name}/weight_norm"] = math.sqrt(sum(float(np.vdot(p, p)) for p in now))
                figures[f"{name}/weight_change"] = moved / size if size else math.nan
                first = self._first.setdefault(i, grad)
                if not math.isfinite(grad) or (first > 0 and grad > self.explode * first):
                    self._warn(
                        f"{name}/explode",
                        f"{name}: the gradient norm is {grad:.3g} at epoch {epoch + 1} "
                        f"(epoch 1: {first:.3g}); lower the learning rate or clip gradients",
                    )
            if i in self._alive:
                dead = float(1.0 - self._alive[i].mean())
                figures[f"{name}/dead"] = dead
                if dead > self.dead:
                    self._warn(
                        f"{name}/dead",
                        f"{name}: {dead:.0%} of its ReLU units never fired in epoch "
                        f"{epoch + 1}; they pass no gradient (lower the learning rate, check "
                        "the input scale)",
                    )
            if i in self._saturated:
                figures[f"{name}/saturated"] = self._saturated[i] / steps
        history = self.model.history
        for key, value in figures.items():
            self.history.setdefault(f"monitor/{key}", []).append(value)
            if history is not None:
                history.history.setdefault(f"monitor/{key}", []).append(value)

    def _warn(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=2)
