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

import dataclasses
import inspect
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from barenet import architectures, optim, plots, report
from barenet.callbacks import Callback, History
from barenet.datasets import load, scale
from barenet.datasets.specs import get_spec
from barenet.errors import ArgumentError, check_int, check_positive, is_real
from barenet.files import atomic_write
from barenet.metrics import classification_report, confusion_matrix
from barenet.model import Sequential
from barenet.schedules import CosineDecay, Schedule

__all__ = ["MAX_PARAMS", "RunResult", "TrainOptions", "WeightAverage", "random_shift", "run"]

SCHEDULES = ("cosine", "constant")
WEIGHT_DECAY = ("sgd", "adam", "adamw")  #: optimizers that take ``weight_decay``

# Upper bounds of the size options, checked before anything is loaded or allocated: a
# typo (--hidden 1000000000, --epochs 10**30) gets one line instead of a MemoryError or
# a run that never ends. Far above anything these datasets need.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_WIDTH = 65_536
MAX_LAYERS = 64
MAX_IMAGES = 10_000_000  #: for ``limit`` and a ``val_split`` given as a count
MAX_SEED = 2**63 - 1
#: Parameters a network may have: 200 MB of float32 weights (Adam keeps two more copies,
#: training one of gradients). The shipped networks have at most 1.07 million.
MAX_PARAMS = 50_000_000


@dataclass
class TrainOptions:
    """Everything that decides a training run (the command line's options).

    ``val_split`` is a fraction of the training set (``0.1``) or a number of images
    (``5000``), taken from its end. ``limit`` trains on the first ``limit`` training
    images only (quick tries). ``shift`` moves each training image by up to that many
    pixels at random (0 = no augmentation). ``average_last`` replaces the final weights by
    the mean of the weights at the end of the last ``average_last`` epochs.
    """

    dataset: str = "mnist"
    model: str = "mlp"
    hidden: tuple[int, ...] = (512, 256)
    dropout: float = 0.2
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "cosine"
    decay: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    shift: int = 0
    average_last: int = 0
    val_split: float = 0.1
    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None

    def check(self) -> None:
        """Raise ``ArgumentError`` naming the first bad option."""
        get_spec(self.dataset)
        if self.model not in architectures.ARCHITECTURES:
            names = ", ".join(architectures.ARCHITECTURES)
            raise ArgumentError(f"model must be one of {names}; got {self.model!r}")
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        for name in ("shift", "average_last"):
            check_int(name, getattr(self, name), 0)
        check_int("seed", self.seed, 0, MAX_SEED)
        if self.limit is not None:
            check_int("limit", self.limit, 2, MAX_IMAGES)
        if self.shift > 4:
            raise ArgumentError(f"shift must be at most 4 pixels, got {self.shift}")
        if self.average_last > self.epochs:
            raise ArgumentError(
                f"average_last ({self.average_last}) cannot exceed epochs ({self.epochs})"
            )
        if not is_real(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ArgumentError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.hidden:
            raise ArgumentError("hidden must name at least one layer width")
        if len(self.hidden) > MAX_LAYERS:
            raise ArgumentError(
                f"hidden must name at most {MAX_LAYERS} layers, got {len(self.hidden)}"
            )
        for width in self.hidden:
            check_int("hidden", width, 1, MAX_WIDTH)
        check_positive("lr", self.lr)
        check_positive("decay", self.decay, allow_zero=True)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_positive("val_split", self.val_split)
        if self.val_split >= 1 and (
            self.val_split != int(self.val_split) or self.val_split > MAX_IMAGES
        ):
            raise ArgumentError(
                f"val_split must be a fraction below 1 or a whole number of images up to "
                f"{MAX_IMAGES:,}, got {self.val_split!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ArgumentError(
                f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}"
            )
        optim.get(self.optimizer)  # raises ArgumentError listing the known names
        if self.weight_decay and self.optimizer.lower() not in WEIGHT_DECAY:
            raise ArgumentError(
                f"weight_decay is not available with optimizer {self.optimizer!r} "
                f"(only {', '.join(WEIGHT_DECAY)})"
            )
        if not is_real(self.momentum) or not 0 <= self.momentum < 1:
            raise ArgumentError(f"momentum must be in [0, 1), got {self.momentum!r}")
        spec = get_spec(self.dataset)
        params = count_params(self, spec.shape("x_train")[1:], len(spec.classes))
        if params > MAX_PARAMS:
            raise ArgumentError(
                f"the {self.model} with hidden widths {','.join(map(str, self.hidden))} would "
                f"have {params:,} parameters, more than the limit of {MAX_PARAMS:,}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def count_params(options: TrainOptions, input_shape: tuple[int, ...], classes: int) -> int:
    """The parameters ``architectures.build`` would give the network ``options`` name, for
    images of ``input_shape``, counted without building it (nothing is allocated)."""
    fan_in, total = math.prod(input_shape), 0
    if options.model == "cnn":  # conv 3x3 + BatchNorm per channel width, 2x2 pooling
        channels = inspect.signature(architectures.cnn).parameters["channels"].default
        c, h, w = (1, *input_shape) if len(input_shape) == 2 else input_shape
        for i, width in enumerate(channels):
            total += c * width * 9 + width + 2 * width
            c = width
            if i + 1 == len(channels) or channels[i + 1] != width:
                h, w = h // 2, w // 2
        fan_in = c * h * w
    for width in (*options.hidden, classes):
        total += fan_in * width + width
        fan_in = width
    return total


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
    """An ``augment`` function for ``Sequential.fit``: move each image of a batch
    ``(N, H, W)`` by a random whole number of pixels in ``[-pixels, pixels]`` along each
    axis, filling the uncovered edge with zeros (the background)."""

    def shift(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, h, w = xb.shape
        padded = np.pad(xb, ((0, 0), (pixels, pixels), (pixels, pixels)))
        dy = rng.integers(0, 2 * pixels + 1, n)
        dx = rng.integers(0, 2 * pixels + 1, n)
        out = np.empty_like(xb)
        # One slice per offset pair: (2 * pixels + 1)^2 vectorised copies per batch.
        for oy in range(2 * pixels + 1):
            for ox in range(2 * pixels + 1):
                idx = np.flatnonzero((dy == oy) & (dx == ox))
                out[idx] = padded[idx, oy : oy + h, ox : ox + w]
        return out

    return shift


class WeightAverage(Callback):
    """At the end of training, set the weights to the mean of their values at the end of
    each of the last ``epochs`` epochs (a cheap ensemble of nearby solutions; the
    averaged network is still one network)."""

    def __init__(self, epochs: int, total_epochs: int) -> None:
        self.epochs, self.total = epochs, total_epochs
        self._sum: np.ndarray | None = None
        self.count = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if epoch >= self.total - self.epochs:
            w = self.model.get_weights().astype(np.float64)
            self._sum = w if self._sum is None else self._sum + w
            self.count += 1

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self._sum is not None:
            self.model.set_weights((self._sum / self.count).astype(self.model.dtype))


def _optimizer(o: TrainOptions, steps: int) -> optim.Optimizer:
    lr: float | Schedule = CosineDecay(o.lr, steps) if o.schedule == "cosine" else o.lr
    kwargs: dict[str, Any] = {"lr": lr, "decay": o.decay}
    name = o.optimizer.lower()
    if name == "sgd":
        kwargs["momentum"] = o.momentum
    if o.weight_decay:
        kwargs["weight_decay"] = o.weight_decay
    return optim.get(name, **kwargs)


def _split(
    x: np.ndarray, y: np.ndarray, val_split: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_val = int(val_split) if val_split >= 1 else round(len(x) * val_split)
    if not 1 <= n_val < len(x):
        raise ArgumentError(
            f"val_split={val_split:g} leaves {n_val} of {len(x)} training images for validation"
        )
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


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
    (x_train, y_train), (x_test, y_test) = load(spec.name, options.data_dir)
    if options.limit is not None:
        x_train, y_train = x_train[: options.limit], y_train[: options.limit]
    x, y, x_val, y_val = _split(scale(x_train), y_train, options.val_split)
    log(f"{spec.title}: {len(x)} training, {len(x_val)} validation, {len(x_test)} test images")

    model = architectures.build(
        options.model,
        hidden=options.hidden,
        dropout=options.dropout,
        input_shape=x.shape[1:],
        num_classes=len(spec.classes),
        seed=options.seed,
    )
    steps = options.epochs * math.ceil(len(x) / options.batch_size)
    model.compile("cross_entropy", _optimizer(options, steps), metrics=["accuracy"])
    callbacks: list[Callback] = []
    if options.average_last > 1:
        callbacks.append(WeightAverage(options.average_last, options.epochs))
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=options.epochs,
        batch_size=options.batch_size,
        validation_data=(x_val, y_val),
        seed=options.seed,
        callbacks=callbacks,
        verbose=verbose,
        augment=random_shift(options.shift) if options.shift else None,
    )
    seconds = time.perf_counter() - start
    val_accuracy = model.evaluate(x_val, y_val)["accuracy"]

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
