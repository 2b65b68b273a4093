"""The training recipe behind ``barenet train``: load a dataset, build a network, train it,
test it once, and write a run folder.

>>> from barenet.train import TrainOptions, run
>>> result = run(TrainOptions(dataset="mnist", epochs=20), "runs/mnist-mlp")  # doctest: +SKIP
>>> result.test_accuracy                                                       # doctest: +SKIP

The test set is read only after training, for the final report: every choice made
while training (the averaged epochs, anything a person tunes by looking at the curves)
can only see the validation part, which is cut from the end of the training set.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from barenet import architectures, losses, optim, plots, report
from barenet.augment import ImageAugment, shift_images
from barenet.callbacks import Callback, History
from barenet.datasets import load, scale
from barenet.datasets.specs import DatasetSpec, get_spec
from barenet.errors import ArgumentError, check_int
from barenet.files import atomic_write
from barenet.metrics import classification_report, confusion_matrix
from barenet.model import Sequential
from barenet.options import (  # noqa: F401  (the names train has always offered)
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_IMAGES,
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_SEED,
    MAX_WIDTH,
    SCHEDULES,
    WEIGHT_DECAY,
    TrainOptions,
    count_params,
)
from barenet.schedules import CosineDecay, Schedule, WarmUp
from barenet.splits import split_off

__all__ = [
    "MAX_PARAMS",
    "RunResult",
    "TrainOptions",
    "WeightAverage",
    "count_params",
    "random_shift",
    "run",
]

_Split = tuple[np.ndarray, np.ndarray]  # images and their labels


@dataclass
class RunResult:
    """What a run measured and where it wrote it."""

    out_dir: Path
    dataset: str
    test_accuracy: float
    test_loss: float
    val_accuracy: float | None
    seconds: float
    epoch_seconds: float
    num_params: int
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def random_shift(pixels: int) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The ``augment`` function of ``barenet train --shift``: move each image by a random
    whole number of pixels in ``[-pixels, pixels]`` along each axis, zeros filling the
    uncovered edge (``augment.shift_images``).

    The same distribution as ``ImageAugment(shift=pixels, rotation=0)``, drawn in the order
    ``barenet train`` has always drawn it (every vertical offset of the batch, then every
    horizontal one), so the commands that made the shipped weights still repeat them.
    """
    check_int("shift", pixels)

    def shift(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        down = pixels - rng.integers(0, 2 * pixels + 1, len(xb))
        right = pixels - rng.integers(0, 2 * pixels + 1, len(xb))
        return shift_images(xb, np.stack([down, right], axis=1))

    return shift


class WeightAverage(Callback):
    """At the end of training, set the weights to the mean of their values at the end of
    each of the last ``epochs`` epochs (a cheap ensemble of nearby solutions; the
    averaged network is still one network). Layers' saved statistics (BatchNorm's running
    mean and variance) are averaged over the same epochs, so they go with the weights."""

    def __init__(self, epochs: int, total_epochs: int) -> None:
        self.epochs, self.total = epochs, total_epochs
        self._sum: np.ndarray | None = None
        self._state_sums: list[np.ndarray] = []
        self.count = 0

    def _states(self) -> list[np.ndarray]:
        return [a for layer in self.model.layers for a in layer.state().values()]

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if epoch >= self.total - self.epochs:
            w = self.model.get_weights().astype(np.float64)
            states = [a.astype(np.float64) for a in self._states()]
            if self._sum is None:
                self._sum, self._state_sums = w, states
            else:
                self._sum += w
                for total, a in zip(self._state_sums, states, strict=True):
                    total += a
            self.count += 1

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self._sum is not None:
            self.model.set_weights((self._sum / self.count).astype(self.model.dtype))
            for a, total in zip(self._states(), self._state_sums, strict=True):
                a[...] = total / self.count


def _optimizer(o: TrainOptions, batches: int) -> optim.Optimizer:
    """The optimizer ``o`` names, its learning rate following ``o.schedule`` (after
    ``o.warmup`` epochs of linear warm-up) over ``batches`` steps per epoch."""
    steps, warm = o.epochs * batches, o.warmup * batches
    lr: float | Schedule = CosineDecay(o.lr, steps - warm) if o.schedule == "cosine" else o.lr
    if warm:
        lr = WarmUp(lr, warm)
    kwargs: dict[str, Any] = {"lr": lr, "decay": o.decay}
    name = o.optimizer.lower()
    if name == "sgd":
        kwargs["momentum"] = o.momentum
    if o.weight_decay:
        kwargs["weight_decay"] = o.weight_decay
    return optim.get(name, **kwargs)


def _model(
    options: TrainOptions, input_shape: tuple[int, ...], classes: int, batches: int
) -> Sequential:
    """The network ``options`` name, compiled with their optimizer for ``batches`` steps
    per epoch."""
    widths = {} if options.channels is None else {"channels": options.channels}
    model = architectures.build(
        options.model,
        hidden=options.hidden,
        dropout=options.dropout,
        input_shape=input_shape,
        num_classes=classes,
        seed=options.seed,
        **widths,
    )
    loss = losses.get("cross_entropy", label_smoothing=options.label_smoothing)
    model.compile(loss, _optimizer(options, batches), metrics=["accuracy"])
    return model


def run(
    options: TrainOptions,
    out_dir: str | Path,
    *,
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train as ``options`` say and write ``model.npz``, ``history.json``, ``report.md``
    and (with matplotlib) pictures into ``out_dir``.

    Parameters
    ----------
    options : TrainOptions
    out_dir : path
        Created if missing; files already there with the same names are replaced.
    verbose : int or str
        Passed to ``Sequential.fit`` (progress bars on stderr; 0 for none).
    log : callable
        Receives one line at a time about what is happening (loading, saving).
    """
    options.check()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"out must be a folder, but {out} is a file")
    spec = get_spec(options.dataset)
    (x, y), validation, (x_test, y_test) = _splits(options, spec, log)
    model = _model(options, x.shape[1:], len(spec.classes), math.ceil(len(x) / options.batch_size))
    start = time.perf_counter()
    history = _fit(model, options, x, y, validation, verbose)
    seconds = time.perf_counter() - start
    val_accuracy = None if validation is None else model.evaluate(*validation)["accuracy"]

    # The test set, once, after every training decision is made.
    x_test_f = scale(x_test)
    test = model.evaluate(x_test_f, y_test)
    proba = model.predict_proba(x_test_f)
    result = RunResult(
        out_dir=out,
        dataset=spec.name,
        test_accuracy=test["accuracy"],
        test_loss=test["loss"],
        val_accuracy=val_accuracy,
        seconds=seconds,
        epoch_seconds=float(np.mean(history.history["time"])),
        num_params=model.num_params,
    )
    model.metadata = {
        "dataset": spec.name,
        "classes": list(spec.classes),
        "preprocess": {"scale": "pixels / 255", "pictures": spec.name},
        "options": options.to_dict(),
        "val_accuracy": val_accuracy,
        "test_accuracy": result.test_accuracy,
    }
    _write_run(model, history, result, options, x_test, y_test, proba, log)
    return result


def _splits(
    options: TrainOptions, spec: DatasetSpec, log: Callable[[str], None]
) -> tuple[_Split, _Split | None, _Split]:
    """The dataset's training images (scaled, cut to ``options.limit``), the validation
    part cut from their end (None for ``val_split=0``), and the test images as stored
    (unscaled)."""
    (x_train, y_train), (x_test, y_test) = load(spec.name, options.data_dir)
    if options.limit is not None:
        x_train, y_train = x_train[: options.limit], y_train[: options.limit]
    x, y, validation = scale(x_train), y_train, None
    if options.val_split:  # 0: every training image trains, as fit(validation_split=0)
        (x, y), validation = split_off(x, y, options.val_split, "val_split")
    n_val = 0 if validation is None else len(validation[1])
    log(f"{spec.title}: {len(x)} training, {n_val} validation, {len(x_test)} test images")
    return (x, y), validation, (x_test, y_test)


def _fit(
    model: Sequential,
    options: TrainOptions,
    x: np.ndarray,
    y: np.ndarray,
    validation: _Split | None,
    verbose: int | str,
) -> History:
    """Train ``model`` as ``options`` say, averaging the last epochs' weights and
    augmenting the images if they ask for it."""
    return model.fit(
        x,
        y,
        epochs=options.epochs,
        batch_size=options.batch_size,
        validation_data=validation,
        seed=options.seed,
        callbacks=[WeightAverage(options.average_last, options.epochs)]
        if options.average_last > 1
        else [],
        verbose=verbose,
        augment=_augment(options),
    )


def _augment(o: TrainOptions) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
    """The ``fit(augment=...)`` of ``o``: none, ``random_shift`` for shifts alone (the draws
    that made the shipped weights), else ``ImageAugment``."""
    if o.flip or o.rotate or o.erase:
        return ImageAugment(o.shift, o.rotate, flip=o.flip, erase=o.erase)
    return random_shift(o.shift) if o.shift else None


def _write_run(
    model: Sequential,
    history: History,
    result: RunResult,
    options: TrainOptions,
    x_test: np.ndarray,
    y_test: np.ndarray,
    proba: np.ndarray,
    log: Callable[[str], None],
) -> None:
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    classes = model.metadata["classes"]
    pred = proba.argmax(axis=1)
    cm = confusion_matrix(y_test, pred, len(classes))
    per_class = classification_report(y_test, pred, len(classes))
    result.files["model"] = model.save(out / "model.npz")
    record = {
        "options": options.to_dict(),
        "epochs": [e + 1 for e in history.epoch],
        "history": history.history,
        "test": {"accuracy": result.test_accuracy, "loss": result.test_loss},
        "val_accuracy": result.val_accuracy,
        "seconds": result.seconds,
        "num_params": result.num_params,
    }
    text = json.dumps(record, indent=1, allow_nan=False).encode("utf-8")
    atomic_write(out / "history.json", lambda f: f.write(text))
    result.files["history"] = out / "history.json"
    if plots.available():
        result.files["curves"] = plots.plot_history(history.history, out / "curves.png")
        result.files["confusion"] = plots.plot_confusion(cm, classes, out / "confusion.png")
        result.files["mistakes"] = plots.plot_mistakes(
            x_test, y_test, proba, classes, out / "mistakes.png"
        )
    else:
        result.notes.append(plots.MISSING)
    markdown = report.run_report(result, options, per_class, cm, classes).encode("utf-8")
    atomic_write(out / "report.md", lambda f: f.write(markdown))
    result.files["report"] = out / "report.md"
    log(f"wrote {', '.join(p.name for p in result.files.values())} to {out}")
