"""Text reports of a trained classifier: the terminal's tables and a run's ``report.md``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from barenet.metrics import format_report
from barenet.options import TrainOptions

if TYPE_CHECKING:
    from barenet.train import RunResult

__all__ = ["format_confusion", "run_report", "short_names"]


def short_names(classes: Sequence[str], width: int = 7) -> list[str]:
    """Class names cut to ``width`` characters, for narrow table columns."""
    return [c if len(c) <= width else c[: width - 1] + "." for c in classes]


def format_confusion(cm: np.ndarray, classes: Sequence[str]) -> str:
    """The confusion matrix as aligned text: rows are true classes, columns predicted."""
    names = short_names(classes)
    cell = max(5, len(str(int(cm.max()))) + 1, *(len(n) + 1 for n in names))
    label = max(len(c) for c in classes) + 1
    corner = "true/predicted"
    label = max(label, len(corner) + 1)
    lines = [f"{corner:<{label}}" + "".join(f"{n:>{cell}}" for n in names)]
    for name, row in zip(classes, cm, strict=True):
        lines.append(f"{name:<{label}}" + "".join(f"{int(v):>{cell}}" for v in row))
    return "\n".join(lines)


def _command(options: TrainOptions) -> str:
    """The ``barenet train`` command line that repeats a run."""
    defaults = TrainOptions()
    parts = ["barenet train", f"--dataset {options.dataset}", f"--model {options.model}"]
    for key, value in options.to_dict().items():
        if key in ("dataset", "model") or value == getattr(defaults, key):
            continue
        if key == "hidden" and list(value) == list(defaults.hidden):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):  # a flag without a value: --flip
            parts.append(flag)
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else f"{value}"
        parts.append(f"{flag} {text}")
    return " ".join(parts)


def _widths(options: TrainOptions) -> str:
    """``512-256``; a CNN's convolution widths first when given: ``16-32 / 128``."""
    hidden = "-".join(map(str, options.hidden))
    if options.channels is None:
        return hidden
    return f"{'-'.join(map(str, options.channels))} / {hidden}"


def run_report(
    result: RunResult,
    options: TrainOptions,
    per_class: dict[str, np.ndarray],
    cm: np.ndarray,
    classes: Sequence[str],
) -> str:
    """Markdown for a run folder: how it was trained, how it did, where it fails."""
    val = "-" if result.val_accuracy is None else f"{result.val_accuracy:.2%}"
    lines = [
        f"# {result.dataset}: {options.model} {_widths(options)}",
        "",
        "Repeat this run with:",
        "",
        "```",
        _command(options),
        "```",
        "",
        "| measure | value |",
        "|---|---|",
        f"| test accuracy | {result.test_accuracy:.2%} |",
        f"| test loss | {result.test_loss:.4f} |",
        f"| validation accuracy | {val} |",
        f"| training time | {result.seconds:.1f} s ({result.epoch_seconds:.2f} s per epoch) |",
        f"| parameters | {result.num_params:,} |",
        "",
        "## Per class (test set)",
        "",
        "```",
        format_report(per_class, classes),
        "```",
        "",
        "## Confusion matrix (test set)",
        "",
        "```",
        format_confusion(cm, classes),
        "```",
        "",
    ]
    pictures = [("curves", "Learning curves"), ("confusion", "Confusion matrix")]
    pictures.append(("mistakes", "Most confidently wrong test images"))
    shown = [(key, title) for key, title in pictures if key in result.files]
    if shown:
        lines += ["## Pictures", ""]
        lines += [f"![{title}]({result.files[key].name})" for key, title in shown]
        lines.append("")
    lines += [f"> {note}" for note in result.notes]
    return "\n".join(lines)
