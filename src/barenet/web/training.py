"""Short training runs for the Learn page: one at a time, in a background thread.

A run trains a small multi-layer perceptron or convolutional network with
``Sequential.fit``; a callback turns its progress into events (plain dicts, JSON-ready)
that the server streams to the page:

* ``start``: the settings, the class names and a panel of validation images;
* ``progress``: the step, the epoch's running loss and accuracy, and the network's
  current answer for each image of the panel (about ``POINTS`` times in a run);
* ``epoch``: the epoch's training and validation loss and accuracy, and the confusion
  matrix on the validation images (``confusion[true][predicted]`` counts);
* ``end``: ``status`` is ``"done"``, ``"stopped"`` or ``"error"`` (with a ``message``).

A run that ends ``"done"`` keeps its network (``TrainingRun.model``), which the server then
offers on the Draw page, in memory only.

The validation images are cut from the end of the training set, so the test set stays
unseen, as in ``barenet train``.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from barenet import architectures
from barenet.callbacks import Callback
from barenet.datasets import cache, scale, sources
from barenet.datasets.specs import get_spec
from barenet.errors import ArgumentError, BarenetError, DatasetError, check_int, check_range
from barenet.metrics import confusion_matrix
from barenet.model import Sequential
from barenet.optim import Adam
from barenet.options import tighten
from barenet.splits import split_off

__all__ = [
    "LIMITS",
    "DatasetMissingError",
    "RunBusyError",
    "TrainSettings",
    "Trainer",
    "TrainingRun",
    "local_dataset",
]

#: Bounds of each setting a request may choose: (smallest, largest), both allowed. They are
#: the command line's (``barenet.options``), narrowed by ``tighten`` to what one request
#: may cost here, so neither can accept what the other refuses as out of range. Two more
#: cap a run's cost: ``steps`` (epochs x batches per epoch; the page's largest run, at the
#: default batch size, takes 18,440) and ``work`` (see ``TrainSettings.work``), which keeps
#: the largest run to minutes on two cores where the other bounds alone allowed hours (a
#: batch of 1).
LIMITS: dict[str, tuple[float, float]] = {
    "hidden_layers": tighten("layers", high=3),
    "width": tighten("width", high=1024),
    "conv_blocks": tighten("layers", high=2),
    "channels": tighten("width", high=64),
    "lr": tighten("lr", low=1e-5, high=1.0),
    "epochs": tighten("epochs", high=20),
    "samples": tighten("limit", low=100, high=59_000),
    "batch_size": tighten("batch_size", high=1024),
    "seed": tighten("seed", high=2**32 - 1),
    "steps": (1, 20_000),
    "work": (1, 2e11),
}
VALIDATION = 1000  #: images at the end of the training set held out for validation
PANEL = 12  #: validation images whose predictions the page shows as training goes
POINTS = 200  #: about how many progress events a run sends, whatever its length
SIDE = 28  #: the images' side
CLASSES = 10  #: classes of both datasets
#: What a step's Adam update of a weight costs, counted in images passing through that
#: weight (forward and backward): an estimate, generous towards the update.
UPDATE_COST = 16

Split = tuple[np.ndarray, np.ndarray]
Loader = Callable[[str], tuple[Split, Split]]


class RunBusyError(BarenetError):
    """A training run is already going on."""


class DatasetMissingError(BarenetError):
    """A dataset a request needs is not on this machine (the server never fetches one)."""


def local_dataset(name: str) -> tuple[Split, Split]:
    """Dataset ``name`` from this machine only: barenet's cache, else an operating-system
    copy. ``barenet.datasets.load`` would go on to download mirrors and run pip or apt-get;
    a request must never make the server do that, so a missing dataset is an error that
    says how to fetch it."""
    spec = get_spec(name)
    try:
        arrays = cache.read_cache(spec)[0]
    except DatasetError:
        try:
            arrays = sources.from_system(spec, None)[0]
        except DatasetError:
            raise DatasetMissingError(
                f"{spec.title} is not on this machine: run `barenet data fetch {spec.name}` "
                "first, then try again"
            ) from None
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _setting(name: str, value: Any, limit: str | None = None) -> Any:
    """``value`` checked against ``LIMITS[limit or name]``: whole numbers for the integer
    settings, any real number for ``lr``."""
    lo, hi = LIMITS[limit or name]
    if name == "lr":
        return check_range(name, value, f"[{lo!r}, {hi!r}]")
    return check_int(name, value, int(lo), int(hi))


@dataclass(frozen=True)
class TrainSettings:
    """What a Learn-page run trains: ``dataset`` ("mnist" or "fashion"), the ``kind`` of
    network ("mlp", or "cnn": ``channels`` gives its 3x3 convolutions' widths, each
    followed by BatchNorm, ReLU and 2x2 max pooling, as ``architectures.cnn`` builds them),
    the ``hidden`` dense layer widths, Adam's learning rate ``lr``, ``epochs``, the number
    of training images ``samples`` (the first ones of the training set), ``batch_size``
    and ``seed``."""

    dataset: str = "mnist"
    kind: str = "mlp"
    channels: tuple[int, ...] = (8, 16)
    hidden: tuple[int, ...] = (64,)
    lr: float = 1e-3
    epochs: int = 1
    samples: int = 5000
    batch_size: int = 64
    seed: int = 0

    @classmethod
    def from_json(cls, data: Any) -> TrainSettings:
        """Check a request's JSON object; raise ``ArgumentError`` naming the first bad field."""
        if not isinstance(data, dict):
            raise ArgumentError(f"the body must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise ArgumentError(f"unknown setting {unknown[0]!r}")
        dataset = data.get("dataset", cls.dataset)
        if not isinstance(dataset, str):
            raise ArgumentError(f"dataset must be a string, got {dataset!r}")
        dataset = get_spec(dataset).name
        kind = data.get("kind", cls.kind)
        if kind not in ("mlp", "cnn"):
            raise ArgumentError(f"kind must be 'mlp' or 'cnn', got {kind!r}")
        widths: dict[str, Any] = {}
        for name, count in (("hidden", "hidden_layers"), ("channels", "conv_blocks")):
            value = data.get(name, list(getattr(cls, name)))
            lo, hi = LIMITS[count]
            if not isinstance(value, list) or not lo <= len(value) <= hi:
                what = "layer" if name == "hidden" else "convolution"
                raise ArgumentError(
                    f"{name} must be a list of {lo:g} to {hi:g} {what} widths, got {value!r}"
                )
            limit = "width" if name == "hidden" else "channels"
            widths[name] = tuple(_setting(name, width, limit) for width in value)
        settings = cls(
            dataset=dataset,
            kind=kind,
            **widths,
            **{
                name: _setting(name, data.get(name, getattr(cls, name)))
                for name in ("lr", "epochs", "samples", "batch_size", "seed")
            },
        )
        settings.check_cost()
        return settings

    @property
    def steps(self) -> int:
        """Optimisation steps of the run: epochs x batches per epoch."""
        return self.epochs * math.ceil(self.samples / self.batch_size)

    @property
    def work(self) -> int:
        """The run's cost, roughly proportional to its time: multiply-adds per image x
        images seen + weights x ``UPDATE_COST`` x steps, for 28x28 inputs and 10 classes.
        For an MLP both counts are its weights; a convolution's weights are used at every
        position of its output, and cost about as much per multiply-add as a dense layer's."""
        side, fan_in, macs, weights = SIDE, SIDE * SIDE, 0, 0
        if self.kind == "cnn":
            c_in = 1
            for i, c in enumerate(self.channels):
                conv = (9 * c_in + 1) * c
                weights += conv + 2 * c  # and BatchNorm's scale and shift
                macs += side * side * conv
                c_in = c
                if i + 1 == len(self.channels) or self.channels[i + 1] != c:
                    side //= 2  # a 2x2 max pooling closes each run of equal widths
            fan_in = c_in * side * side
        dense = sum((a + 1) * b for a, b in itertools.pairwise([fan_in, *self.hidden, CLASSES]))
        macs, weights = macs + dense, weights + dense
        return macs * self.epochs * self.samples + weights * UPDATE_COST * self.steps

    def check_cost(self) -> None:
        """``ArgumentError`` when the run would cost more than ``LIMITS`` allows."""
        steps, work = self.steps, self.work
        if steps > LIMITS["steps"][1]:
            raise ArgumentError(
                f"the run would take {steps:,} steps (epochs x samples / batch_size, rounded "
                f"up); the limit is {LIMITS['steps'][1]:,.0f}: fewer epochs or samples, or a "
                "larger batch_size"
            )
        if work > LIMITS["work"][1]:
            raise ArgumentError(
                f"the run is too large: weights x (images seen + {UPDATE_COST} x steps) is "
                f"{work:.3g}; the limit is {LIMITS['work'][1]:.3g}: fewer epochs or samples, "
                "narrower hidden layers, or a larger batch_size"
            )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["channels"] = list(self.channels)
        return d


class _Stopped(Exception):
    """Raised from inside ``fit`` to leave an epoch at once when the user stops the run."""


class _Reporter(Callback):
    """Turns ``fit``'s callbacks into events, and stops training when asked."""

    def __init__(self, run: TrainingRun, steps: int, panel: np.ndarray, validation: Split) -> None:
        self.run, self.steps, self.panel = run, steps, panel
        self.validation = validation
        total = run.settings.epochs * steps
        self.total, self.every = total, max(1, math.ceil(total / POINTS))
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch = epoch

    def on_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        if self.run.stop_requested.is_set():
            self.model.stop_training = True
            raise _Stopped
        step = self.epoch * self.steps + batch + 1
        if step % self.every and step != 1 and batch != self.steps - 1:
            return
        self.run.emit(
            "progress",
            epoch=self.epoch + 1,
            step=step,
            steps=self.total,
            loss=logs["loss"],
            accuracy=logs["accuracy"],
            predictions=self.model.predict(self.panel).tolist(),
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        x_val, y_val = self.validation
        confusion = confusion_matrix(y_val, self.model.predict(x_val), CLASSES)
        self.run.emit(
            "epoch",
            epoch=epoch + 1,
            step=(epoch + 1) * self.steps,
            confusion=confusion.tolist(),
            **{k: float(v) for k, v in logs.items() if k != "lr"},
        )


class TrainingRun:
    """One training run: its settings, the events it has produced so far, and its thread."""

    def __init__(self, run_id: int, settings: TrainSettings, loader: Loader) -> None:
        self.id = run_id
        self.settings = settings
        self.events: list[dict[str, Any]] = []
        self.status = "running"
        #: The trained network, once the run has ended "done".
        self.model: Sequential | None = None
        self.stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._loader = loader
        self._thread = threading.Thread(target=self._main, name=f"barenet-train-{run_id}")
        self._thread.daemon = True

    # ---- events -------------------------------------------------------------------------
    def emit(self, kind: str, **fields: Any) -> None:
        """Append an event whose ``type`` is ``kind``."""
        event = {"type": kind, "run": self.id, **fields}
        for key, value in event.items():
            if isinstance(value, float) and not math.isfinite(value):
                event[key] = None  # JSON has no NaN; the page shows a gap
        with self._lock:
            self.events.append(event)

    def events_from(self, index: int) -> list[dict[str, Any]]:
        """The events from position ``index`` on (a copy)."""
        with self._lock:
            return self.events[index:]

    @property
    def running(self) -> bool:
        return self.status == "running"

    # ---- control ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the run to stop after the current batch (returns at once)."""
        self.stop_requested.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run's thread; True when it has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _finish(self, status: str, message: str = "") -> None:
        self.status = status
        self.emit("end", status=status, message=message)

    def _main(self) -> None:
        try:
            self._train()
        except _Stopped:
            self._finish("stopped", "stopped by the user")
        except BarenetError as e:
            self._finish("error", str(e))
        except Exception as e:  # a bug must end the run with a message, not kill the server
            self._finish("error", f"training failed: {type(e).__name__}: {e}")
        else:
            self._finish("stopped" if self.stop_requested.is_set() else "done")

    def _train(self) -> None:
        s = self.settings
        spec = get_spec(s.dataset)
        (x_all, y_all), _ = self._loader(spec.name)
        (x_rest, y_rest), (x_val, y_val) = split_off(x_all, y_all, VALIDATION, "validation")
        n = min(s.samples, len(x_rest))
        x, y, x_val = scale(x_rest[:n]), y_rest[:n], scale(x_val)
        steps = math.ceil(n / s.batch_size)
        self.emit(
            "start",
            settings=s.to_json(),
            classes=list(spec.classes),
            samples=n,
            steps=s.epochs * steps,
            panel={
                "images": x_all[-PANEL:].reshape(PANEL, -1).tolist(),
                "labels": y_all[-PANEL:].tolist(),
            },
        )
        shape = x.shape[1:]
        if s.kind == "cnn":
            model = architectures.cnn(
                s.channels, s.hidden, dropout=0.0, input_shape=shape, seed=s.seed
            )
        else:
            model = architectures.mlp(s.hidden, dropout=0.0, input_shape=shape, seed=s.seed)
        model.compile("cross_entropy", Adam(lr=s.lr), metrics=["accuracy"])
        history = model.fit(
            x,
            y,
            epochs=s.epochs,
            batch_size=s.batch_size,
            validation_data=(x_val, y_val),
            seed=s.seed,
            callbacks=[_Reporter(self, steps, x_val[-PANEL:], (x_val, y_val))],
            verbose=0,
        )
        val = history.history.get("val_accuracy", [])
        model.metadata = {
            "dataset": spec.name,
            "classes": list(spec.classes),
            "preprocess": {"scale": "pixels / 255", "pictures": spec.name},
            "val_accuracy": val[-1] if val else None,
            "trained": "on the Learn page",
        }
        if not self.stop_requested.is_set():
            self.model = model


class Trainer:
    """Holds at most one running ``TrainingRun`` (and the last one, once it has ended).

    Parameters
    ----------
    loader : callable, optional
        ``loader(name) -> ((x_train, y_train), (x_test, y_test))``; by default
        :func:`local_dataset` (this machine's copies only, never a download). Datasets are
        kept in memory after their first use.
    """

    def __init__(self, loader: Loader | None = None) -> None:
        self._load = loader or local_dataset
        self._cache: dict[str, Any] = {}
        self._cache_lock = threading.Lock()
        self._lock = threading.Lock()
        self.current: TrainingRun | None = None
        self._count = 0

    def dataset(self, name: str) -> Any:
        """Dataset ``name`` as the loader gives it, loaded once and then kept."""
        with self._cache_lock:
            if name not in self._cache:
                self._cache[name] = self._load(name)
            return self._cache[name]

    def start(self, settings: TrainSettings) -> TrainingRun:
        """Start a run; ``RunBusyError`` when one is still going on."""
        with self._lock:
            if self.current is not None and self.current.running:
                raise RunBusyError(
                    f"a training run (#{self.current.id}) is already going on; stop it or "
                    "wait for it to end"
                )
            self._count += 1
            self.current = TrainingRun(self._count, settings, self.dataset)
        self.current.start()
        return self.current

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the current run, if any, and wait for it; True when none is left running."""
        run = self.current
        if run is None:
            return True
        run.stop()
        return run.join(timeout)
