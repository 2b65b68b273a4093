"""The options of a training run, defined once: ``TrainOptions`` with each option's
default, bounds and help.

``barenet train`` builds its flags from these fields (``add_arguments``) and reads them
back generically (``TrainOptions.from_namespace``); the web's Learn page checks its
settings against the same ``BOUNDS`` and ``INTERVALS``, tightened where its cost caps
need it (``tighten``). A new option is one field here: the command line, the checks, the
run folder's ``history.json`` and the report's command line follow.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

from barenet import architectures, optim
from barenet.datasets.specs import get_spec
from barenet.errors import ArgumentError, check_int, check_range

__all__ = [
    "BOUNDS",
    "CNN_CHANNELS",
    "INTERVALS",
    "MAX_PARAMS",
    "TrainOptions",
    "add_arguments",
    "count_params",
    "parse_widths",
    "tighten",
]

SCHEDULES = ("cosine", "constant")
#: The convolution widths of ``--model cnn`` when ``channels`` is not given.
CNN_CHANNELS: tuple[int, ...] = inspect.signature(architectures.cnn).parameters["channels"].default
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

#: Whole-number options: (smallest, largest), both allowed. ``width`` bounds each entry
#: of ``hidden`` (and of a CNN's ``channels``), ``layers`` their number.
BOUNDS: dict[str, tuple[int, int]] = {
    "epochs": (1, MAX_EPOCHS),
    "batch_size": (1, MAX_BATCH_SIZE),
    "width": (1, MAX_WIDTH),
    "layers": (1, MAX_LAYERS),
    "shift": (0, 4),
    "warmup": (0, MAX_EPOCHS),
    "average_last": (0, MAX_EPOCHS),
    "limit": (2, MAX_IMAGES),
    "seed": (0, MAX_SEED),
}
#: Real-valued options: the interval each must lie in (``errors.check_range``).
INTERVALS: dict[str, str] = {
    "dropout": "[0, 1)",
    "lr": "(0, inf)",
    "decay": "[0, inf)",
    "momentum": "[0, 1)",
    "weight_decay": "[0, inf)",
    "label_smoothing": "[0, 1)",
    "rotate": "[0, 180]",
    "erase": "[0, 1]",
}


def tighten(name: str, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """The bounds of option ``name`` (``BOUNDS``, or ``INTERVALS``' ends) narrowed to
    ``[low, high]``; narrowing is all another front end may do, never widening."""
    lo: float
    hi: float
    if name in BOUNDS:
        lo, hi = BOUNDS[name]
    else:
        lo, hi = (float(end) for end in INTERVALS[name].strip("[]()").split(","))
    return (lo if low is None else max(lo, low), hi if high is None else min(hi, high))


def parse_widths(text: str) -> tuple[int, ...]:
    """``"512,256"`` -> ``(512, 256)``, for the command line's ``--hidden``."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 512,256, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return widths


def _option(
    default: Any,
    help: str,
    parse: Any = None,
    metavar: str | None = None,
    *,
    recorded: bool = True,
) -> Any:
    """A field of ``TrainOptions``: its default, and its command-line help and parser.

    ``recorded=False``: ``to_dict`` leaves the option out while it has its default, so the
    records of runs that do not use it (the shipped networks' files among them) are the
    same as before the option existed.
    """
    meta = {"help": help, "parse": parse or type(default), "metavar": metavar}
    return field(default=default, metadata={**meta, "recorded": recorded})


@dataclass
class TrainOptions:
    """Everything that decides a training run (the command line's options).

    ``val_split`` is a fraction of the training set (``0.1``) or a number of images
    (``5000``), taken from its end; 0 trains on every training image, with no validation
    (for a final run of a recipe already chosen on a validation split). ``limit`` trains
    on the first ``limit`` training images only (quick tries). ``shift`` moves each
    training image by up to that many pixels at random (0 = no augmentation); ``flip``,
    ``rotate`` and ``erase`` add mirror images, rotations and erased rectangles
    (``augment.ImageAugment``). ``average_last`` replaces the final weights by the mean of
    the weights at the end of the last ``average_last`` epochs. ``channels`` (CNN only,
    None: ``architectures.cnn``'s 32,64,128) are the widths of the convolutions.
    """

    dataset: str = _option("mnist", "mnist or fashion (default %(default)s)")
    model: str = _option("mlp", "network to build (default %(default)s)")
    hidden: tuple[int, ...] = _option(
        (512, 256), "hidden layer widths (default 512,256)", parse_widths, "W1,W2,..."
    )
    channels: tuple[int, ...] | None = _option(
        None,
        "convolution widths of --model cnn (default 32,64,128)",
        parse_widths,
        "C1,C2,...",
        recorded=False,
    )
    dropout: float = _option(0.2, "default %(default)s")
    epochs: int = _option(20, "default %(default)s")
    batch_size: int = _option(128, "default %(default)s")
    optimizer: str = _option("adam", "sgd, adagrad, rmsprop, adam or adamw")
    lr: float = _option(1e-3, "learning rate (default %(default)s)")
    schedule: str = _option(
        "cosine", "learning-rate schedule: cosine (to 0 at the end) or constant"
    )
    warmup: int = _option(
        0,
        "raise the learning rate linearly from near 0 over the first N epochs, then follow "
        "the schedule (default 0: off)",
        metavar="N",
        recorded=False,
    )
    decay: float = _option(0.0, "classic decay: lr / (1 + decay * step)")
    momentum: float = _option(0.9, "for sgd only")
    weight_decay: float = _option(0.0, "L2 weight decay")
    label_smoothing: float = _option(
        0.0,
        "train toward (1 - EPS) * one-hot + EPS / classes instead of one-hot (default 0)",
        metavar="EPS",
        recorded=False,
    )
    shift: int = _option(
        0,
        "augment: move training images by up to this many pixels (default 0: off)",
        metavar="PIXELS",
    )
    flip: bool = _option(
        False,
        "augment: mirror training images left-right, half of them (for clothes, not digits)",
        recorded=False,
    )
    rotate: float = _option(
        0.0,
        "augment: turn training images by up to this many degrees (default 0: off)",
        metavar="DEGREES",
        recorded=False,
    )
    erase: float = _option(
        0.0,
        "augment: blank a random rectangle (2-33%% of the image) of each training image "
        "with probability P (default 0: off)",
        metavar="P",
        recorded=False,
    )
    average_last: int = _option(
        0, "end with the mean of the weights of the last K epochs (default off)", metavar="K"
    )
    val_split: float = _option(
        0.1,
        "validation images cut from the end of the training set: a fraction (0.1), a "
        "count, or 0 to train on all of them (default %(default)g)",
    )
    limit: int | None = _option(None, "train on the first N training images only", int)
    seed: int = _option(0, "default %(default)s")
    data_dir: str | None = _option(None, "folder holding the IDX files, if any", str)

    def check(self) -> None:
        """Raise ``ArgumentError`` naming the first bad option."""
        get_spec(self.dataset)
        if self.model not in architectures.ARCHITECTURES:
            names = ", ".join(architectures.ARCHITECTURES)
            raise ArgumentError(f"model must be one of {names}; got {self.model!r}")
        for name in ("epochs", "batch_size", "shift", "warmup", "average_last", "seed", "limit"):
            value = getattr(self, name)
            if value is not None or name != "limit":
                check_int(name, value, *BOUNDS[name])
        if self.average_last > self.epochs:
            raise ArgumentError(
                f"average_last ({self.average_last}) cannot exceed epochs ({self.epochs})"
            )
        if self.warmup >= self.epochs:
            raise ArgumentError(f"warmup ({self.warmup}) must be less than epochs ({self.epochs})")
        if not isinstance(self.flip, bool):
            raise ArgumentError(f"flip must be True or False, got {self.flip!r}")
        for name, interval in INTERVALS.items():
            check_range(name, getattr(self, name), interval)
        self._check_widths("hidden", self.hidden)
        if self.channels is not None:
            if self.model != "cnn":
                raise ArgumentError(
                    f"channels is for --model cnn only (the {self.model} has no convolutions)"
                )
            self._check_widths("channels", self.channels)
        self._check_val_split()
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
        spec = get_spec(self.dataset)
        params = count_params(self, spec.shape("x_train")[1:], len(spec.classes))
        if params > MAX_PARAMS:
            widths = f"hidden widths {','.join(map(str, self.hidden))}"
            if self.channels is not None:
                widths = f"channels {','.join(map(str, self.channels))} and {widths}"
            raise ArgumentError(
                f"the {self.model} with {widths} would have {params:,} parameters, more "
                f"than the limit of {MAX_PARAMS:,}"
            )

    @staticmethod
    def _check_widths(name: str, widths: tuple[int, ...]) -> None:
        if not widths:
            raise ArgumentError(f"{name} must name at least one layer width")
        if len(widths) > MAX_LAYERS:
            raise ArgumentError(f"{name} must name at most {MAX_LAYERS} layers, got {len(widths)}")
        for width in widths:
            check_int(name, width, *BOUNDS["width"])

    def _check_val_split(self) -> None:
        value = self.val_split
        check_range("val_split", value, "[0, inf)")
        if value >= 1 and (value != int(value) or value > MAX_IMAGES):
            raise ArgumentError(
                f"val_split must be a fraction below 1 or a whole number of images up to "
                f"{MAX_IMAGES:,}, got {value!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values, for a run's records; an option made with
        ``recorded=False`` only when it differs from its default."""
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if not f.metadata["recorded"] and d[f.name] == f.default:
                del d[f.name]
            elif isinstance(d[f.name], tuple):
                d[f.name] = list(d[f.name])
        return d

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TrainOptions:
        """The options that parsed command-line arguments (``add_arguments``) ask for."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per field of ``TrainOptions``, with its default and help."""
    defaults = TrainOptions()
    for f in dataclasses.fields(TrainOptions):
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):  # --flip, or nothing: not --flip True
            parser.add_argument(flag, action="store_true", help=meta["help"])
            continue
        extra = {"metavar": meta["metavar"]} if meta["metavar"] else {}
        parser.add_argument(
            flag, type=meta["parse"], default=getattr(defaults, f.name), help=meta["help"], **extra
        )


def count_params(options: TrainOptions, input_shape: tuple[int, ...], classes: int) -> int:
    """The parameters ``architectures.build`` would give the network ``options`` name, for
    images of ``input_shape``, counted without building it (nothing is allocated).
    ``ArgumentError`` when a CNN's poolings would shrink the images to nothing."""
    fan_in, total = math.prod(input_shape), 0
    if options.model == "cnn":  # conv 3x3 + BatchNorm per channel width, 2x2 pooling
        channels = options.channels or CNN_CHANNELS
        c, h, w = (1, *input_shape) if len(input_shape) == 2 else input_shape
        for i, width in enumerate(channels):
            total += c * width * 9 + width + 2 * width
            c = width
            if i + 1 == len(channels) or channels[i + 1] != width:
                if min(h, w) < 2:
                    raise ArgumentError(
                        f"channels {','.join(map(str, channels))}: more 2x2 poolings than "
                        f"images of {'x'.join(map(str, input_shape))} allow"
                    )
                h, w = h // 2, w // 2
        fan_in = c * h * w
    for width in (*options.hidden, classes):
        total += fan_in * width + width
        fan_in = width
    return total
