"""The ``barenet`` command: train, evaluate and predict on MNIST and Fashion-MNIST.

``main(argv) -> int`` never raises for bad input: a wrong option, a missing or foreign
file, an unreadable picture, ... is reported in one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from barenet import pretrained
from barenet.datasets import commands as data_commands
from barenet.datasets import load, scale
from barenet.datasets.specs import SPECS, get_spec
from barenet.errors import ArgumentError, BarenetError, check_int
from barenet.files import read_regular_file, regular_file
from barenet.io import load_model
from barenet.metrics import accuracy, classification_report, confusion_matrix, format_report
from barenet.model import Sequential
from barenet.options import MAX_BATCH_SIZE, MAX_SEED, TrainOptions, add_arguments
from barenet.photo import NoObjectError
from barenet.preprocess import MAX_FILE_BYTES, PREPROCESSORS, decode_image, to_mnist_digits
from barenet.report import format_confusion
from barenet.train import run
from barenet.web import add_serve_parser, run_serve

__all__ = ["build_parser", "main", "train_options"]

USAGE_ERROR = 2


class _UsageError(Exception):
    """An argparse complaint, carried to ``main`` so it prints as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message}")


def _add_pretrained(p: argparse.ArgumentParser) -> None:
    """``--pretrained NAME``: a shipped network instead of a model file."""
    p.add_argument(
        "--pretrained", choices=list(pretrained.PRETRAINED), help="use a shipped network"
    )


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a network on MNIST or Fashion-MNIST and write a run folder",
        description="Train a network, test it once, and write model.npz, history.json, "
        "report.md and pictures into the run folder.",
    )
    add_arguments(p)  # one flag per TrainOptions field
    p.add_argument("--out", default=None, help="run folder (default runs/DATASET-MODEL)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="accuracy, per-class report and confusion matrix of a model on its test set",
    )
    p.add_argument("model", nargs="?", help="a model file saved by barenet (model.npz)")
    _add_pretrained(p)
    p.add_argument("--dataset", default=None, help="test set to use (default: the model's)")
    p.add_argument("--data-dir", default=None, help="folder holding the IDX files, if any")


def _add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="classify pictures: top-3 classes with probabilities",
        description="Classify pictures of digits or garments (any size, dark-on-light or "
        "light-on-dark). Usage: barenet predict MODEL.npz IMAGE... or "
        "barenet predict --pretrained NAME IMAGE...",
    )
    p.add_argument("paths", nargs="+", metavar="MODEL.npz IMAGE", help="model file, pictures")
    _add_pretrained(p)
    p.add_argument("--top", type=int, default=3, help="classes to show (default %(default)s)")
    p.add_argument(
        "--show",
        metavar="DIR",
        default=None,
        help="write the 28x28 picture(s) the network saw to DIR/NAME.seen.png",
    )


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: train the default network on MNIST and on Fashion-MNIST",
    )
    p.add_argument("--runs", default="runs", help="parent of the run folders (default runs)")
    p.add_argument("--epochs", type=int, default=TrainOptions().epochs, help="per dataset")
    p.add_argument(
        "--limit", type=int, default=None, help="train on the first N training images only"
    )
    p.add_argument("--data-dir", default=None, help="folder holding the IDX files, if any")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as ONNX (or .safetensors / .npz, by the output's extension)",
        description="Write a model for other tools: OUT.onnx (ONNX, opset --opset), "
        "OUT.safetensors or OUT.npz. Usage: barenet export MODEL OUT or "
        "barenet export --pretrained NAME OUT",
    )
    p.add_argument("paths", nargs="+", metavar="MODEL OUT", help="model file, output file")
    _add_pretrained(p)
    p.add_argument("--opset", type=int, default=None, help="ONNX operator set (default 17)")
    p.add_argument(
        "--batch", default="dynamic", help="ONNX batch axis: dynamic (default) or a size"
    )


def _add_doctor(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a model's gradients, layer contracts and training health on one batch",
        description="Run a model on one batch and report wrong gradients, broken layer "
        "contracts, dead or saturated units, the loss against log(C), and the inputs and "
        "labels. Exit status 1 when the report has errors (a wrong gradient, say), 0 "
        "otherwise. Usage: barenet doctor MODEL.npz [--dataset NAME], barenet doctor "
        "--pretrained NAME, or barenet doctor --script FILE.py (defining model, x and y).",
    )
    p.add_argument("model", nargs="?", help="a model file saved by barenet (model.npz)")
    _add_pretrained(p)
    p.add_argument("--script", help="a Python file that defines model, x and y")
    p.add_argument("--dataset", default=None, help="training set to take the batch from")
    p.add_argument("--data-dir", default=None, help="folder holding the IDX files, if any")
    p.add_argument("--batch-size", type=int, default=256, help="default %(default)s")
    p.add_argument(
        "--samples",
        type=int,
        default=12,
        help="entries of each input and parameter array checked by finite differences",
    )
    p.add_argument("--seed", type=int, default=0, help="default %(default)s")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="barenet",
        description="Neural networks from scratch in NumPy, on MNIST and Fashion-MNIST.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_demo(sub)
    _add_doctor(sub)
    _add_export(sub)
    data_commands.add_parser(sub)
    add_serve_parser(sub)
    return parser


# ---- commands ---------------------------------------------------------------------------
def train_options(args: argparse.Namespace) -> TrainOptions:
    """The ``TrainOptions`` that ``barenet train`` arguments ask for."""
    return TrainOptions.from_namespace(args)


def _train(args: argparse.Namespace) -> int:
    options = train_options(args)
    options.check()
    out = args.out or f"runs/{get_spec(options.dataset).name}-{options.model}"
    result = run(options, out, verbose=0 if args.quiet else "auto", log=_err)
    print(f"dataset         {get_spec(result.dataset).title}")
    print(f"test accuracy   {result.test_accuracy:.2%}")
    print(f"test loss       {result.test_loss:.4f}")
    if result.val_accuracy is not None:
        print(f"val accuracy    {result.val_accuracy:.2%}")
    print(f"time            {result.seconds:.1f} s ({result.epoch_seconds:.2f} s per epoch)")
    print(f"parameters      {result.num_params:,}")
    print(f"run folder      {result.out_dir}")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _load(args: argparse.Namespace, path: str | None) -> tuple[Sequential, str]:
    """The model named on the command line and a label for it."""
    if args.pretrained and path is not None:
        raise ArgumentError(
            f"give a model file or --pretrained NAME, not both (got {path} and "
            f"--pretrained {args.pretrained})"
        )
    if args.pretrained:
        return pretrained.load_pretrained(args.pretrained), args.pretrained
    if path is None:
        raise ArgumentError("give a model file (MODEL.npz) or --pretrained NAME")
    regular_file(path, "model file")  # a FIFO or a device is refused before it is opened
    return load_model(path), path


def _classes(model: Sequential, count: int) -> list[str]:
    names = model.metadata.get("classes")
    return (
        list(names)
        if isinstance(names, list) and len(names) == count
        else list(map(str, range(count)))
    )


def _evaluate(args: argparse.Namespace) -> int:
    model, label = _load(args, args.model)
    dataset = args.dataset or model.metadata.get("dataset")
    if dataset is None:
        raise ArgumentError(f"{label} does not say which dataset it learned: give --dataset")
    spec = get_spec(dataset)
    (_, _), (x_test, y_test) = load(spec.name, args.data_dir)
    start = time.perf_counter()
    proba = model.predict_proba(scale(x_test))
    seconds = time.perf_counter() - start
    if proba.ndim != 2 or proba.shape[1] != len(spec.classes):
        raise ArgumentError(
            f"{label} outputs {proba.shape[1:]} values, {spec.title} has "
            f"{len(spec.classes)} classes"
        )
    pred = proba.argmax(axis=1)
    classes = list(spec.classes)
    print(f"{label} on the {spec.title} test set ({len(y_test)} images, {seconds:.2f} s)")
    print(f"accuracy  {accuracy(y_test, pred):.2%}")
    print()
    print(format_report(classification_report(y_test, pred, len(classes)), classes))
    print()
    print(format_confusion(confusion_matrix(y_test, pred, len(classes)), classes))
    return 0


def _picture(path: str) -> np.ndarray:
    """A picture's pixels: a regular file only (a FIFO or /dev/zero would hang or never
    end), read up to the size limit, then decoded."""
    return decode_image(read_regular_file(path, "image", MAX_FILE_BYTES), f"image {path}")


def _predict(args: argparse.Namespace) -> int:
    paths = list(args.paths)
    if args.pretrained and paths[0].endswith(".npz"):
        raise ArgumentError(
            f"give a model file or --pretrained NAME, not both (got {paths[0]} and "
            f"--pretrained {args.pretrained})"
        )
    model, _ = _load(args, None if args.pretrained else paths.pop(0))
    if not paths:
        raise ArgumentError("give at least one picture to classify")
    if args.top < 1:
        raise ArgumentError(f"top must be >= 1, got {args.top}")
    kind = (model.metadata.get("preprocess") or {}).get("pictures", "mnist")
    prepare = PREPROCESSORS.get(kind, PREPROCESSORS["mnist"])
    what = "digit" if kind == "mnist" else "garment"
    show = Path(args.show) if args.show else None
    if show is not None and not show.is_dir():
        raise ArgumentError(f"show: {show} is not a folder")
    found = 0
    for path in paths:
        picture = _picture(path)
        try:  # a row of digits is read as a number, digit by digit
            seen = to_mnist_digits(picture) if kind == "mnist" else prepare(picture)[None]
        except NoObjectError:
            print(f"{path}: no {what} found (the picture is blank or only noise)")
            continue
        found += 1
        proba = model.predict_proba(scale(seen))
        classes = _classes(model, proba.shape[1])
        if show is not None:
            _write_seen(show / f"{Path(path).stem}.seen.png", seen)
        print(f"{path}: {_answer(proba, classes, args.top)}")
    return 0 if found == len(paths) else 1


def _answer(proba: np.ndarray, classes: list[str], top: int) -> str:
    """One line: the top classes of one picture, or a number with each digit's confidence;
    "(low confidence)" when the best guess has under half the probability."""
    low = " (low confidence)" if proba.max(axis=1).min() < 0.5 else ""
    if len(proba) > 1:
        best = np.argmax(proba, axis=1)
        each = ", ".join(f"{classes[k]} {p[k]:.1%}" for p, k in zip(proba, best, strict=True))
        return f"{''.join(classes[k] for k in best)} ({each}){low}"
    p = proba[0]
    best = np.argsort(-p, kind="stable")[:top]
    return ", ".join(f"{classes[k]} {p[k]:.1%}" for k in best) + low


def _write_seen(path: Path, seen: np.ndarray) -> None:
    """The 28x28 images a network read, side by side and enlarged 8 times, as a PNG."""
    from PIL import Image

    row = np.concatenate(list(seen), axis=1)
    picture = Image.fromarray(row).resize(
        (row.shape[1] * 8, row.shape[0] * 8), Image.Resampling.NEAREST
    )
    picture.save(path)
    print(f"wrote {path}")


def _export(args: argparse.Namespace) -> int:
    from barenet.export import DEFAULT_OPSET, to_onnx

    paths = list(args.paths)
    if len(paths) != (1 if args.pretrained else 2):
        raise ArgumentError("give MODEL OUT, or --pretrained NAME OUT")
    model, _ = _load(args, None if args.pretrained else paths[0])
    out = Path(paths[-1])
    if out.suffix == ".onnx":
        batch = args.batch if args.batch == "dynamic" else _positive("batch", args.batch)
        to_onnx(model, out, batch=batch, opset=args.opset or DEFAULT_OPSET)
    elif out.suffix in (".safetensors", ".npz"):
        model.save(out)
    else:
        raise ArgumentError(f"OUT must end in .onnx, .safetensors or .npz, got {str(out)!r}")
    print(f"wrote {out}")
    return 0


def _positive(name: str, text: str) -> int:
    # isdecimal, not isdigit: int() refuses digits such as "²"; 18 digits fit in int64
    if not (text.isdecimal() and len(text) <= 18) or int(text) < 1:
        raise ArgumentError(f"{name} must be 'dynamic' or a positive integer, got {text!r}")
    return int(text)


def _demo(args: argparse.Namespace) -> int:
    plan = [
        TrainOptions(dataset=name, epochs=args.epochs, limit=args.limit, data_dir=args.data_dir)
        for name in SPECS
    ]
    for options in plan:
        options.check()
    rows = []
    for options in plan:
        title = get_spec(options.dataset).title
        _err(f"== {title} ==")
        load(options.dataset, args.data_dir)  # fetch, or find in the cache, before timing
        start = time.perf_counter()
        out = Path(args.runs) / f"{options.dataset}-{options.model}"
        result = run(options, out, verbose=0 if args.quiet else "auto", log=_err)
        rows.append((title, result, time.perf_counter() - start))
    print(f"{'dataset':<15} {'test accuracy':>13} {'seconds':>8}  run folder")
    for title, result, seconds in rows:
        print(f"{title:<15} {result.test_accuracy:>13.2%} {seconds:>8.1f}  {result.out_dir}")
    print(f"{'both':<15} {'':>13} {sum(row[2] for row in rows):>8.1f}")
    for note in rows[-1][1].notes:
        print(f"note: {note}")
    return 0


def _script(path: str) -> tuple[Any, Any, Any]:
    """``model``, ``x`` and ``y`` as defined by the Python file ``path``."""
    import runpy

    if not Path(path).is_file():
        raise ArgumentError(f"script {path}: no such file")
    try:
        names = runpy.run_path(path, run_name="__barenet_doctor__")
    except (Exception, SystemExit) as e:
        raise ArgumentError(f"script {path} raised {type(e).__name__}: {e}") from None
    missing = [k for k in ("model", "x", "y") if k not in names]
    if missing:
        raise ArgumentError(
            f"script {path} must define model, x and y; missing {', '.join(missing)}"
        )
    return names["model"], names["x"], names["y"]


#: Entries per array ``barenet doctor --samples`` may check (each costs two forward passes).
DOCTOR_MAX_SAMPLES = 256


def _doctor(args: argparse.Namespace) -> int:
    from barenet.doctor import diagnose

    check_int("batch_size", args.batch_size, 1, MAX_BATCH_SIZE)
    check_int("samples", args.samples, 1, DOCTOR_MAX_SAMPLES)
    check_int("seed", args.seed, 0, MAX_SEED)
    if args.script:
        if args.model or args.pretrained:
            raise ArgumentError("give a model file, --pretrained NAME or --script FILE, not two")
        model, x, y = _script(args.script)
        label = args.script
    else:
        model, label = _load(args, args.model)
        dataset = args.dataset or model.metadata.get("dataset")
        if dataset is None:
            raise ArgumentError(f"{label} does not say which dataset it learned: give --dataset")
        (x_train, y), _ = load(get_spec(dataset).name, args.data_dir)
        x = scale(x_train)
    try:
        report = diagnose(
            model, x, y, batch_size=args.batch_size, samples=args.samples, seed=args.seed
        )
    except BarenetError:
        raise
    except Exception as e:  # a model that cannot even run on the batch
        raise ArgumentError(
            f"{label}: the model failed on the batch: {type(e).__name__}: {e}"
        ) from None
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=1, default=float))
    else:
        print(f"barenet doctor: {label}")
        print(report)
    return 1 if report.errors else 0


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "demo": _demo,
    "doctor": _doctor,
    "export": _export,
    "data": data_commands.run,
    "serve": run_serve,
}


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``barenet`` command line with ``argv`` (default ``sys.argv[1:]``); return the
    exit status: 0 on success, 2 for bad input, 130 when interrupted."""
    try:
        args = build_parser().parse_args(argv)
        return int(COMMANDS[args.command](args) or 0)
    except _UsageError as e:
        _err(_one_line(str(e)))
        return USAGE_ERROR
    except BarenetError as e:
        _err(f"barenet: error: {_one_line(str(e))}")
        return USAGE_ERROR
    except OSError as e:  # e.g. a run folder that cannot be written
        what = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        _err(f"barenet: error: {_one_line(what)}")
        return 1
    except SystemExit as e:  # --help and --version exit through argparse
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        _err("barenet: interrupted")
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())
