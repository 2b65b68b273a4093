"""Pictures of a run: learning curves, confusion matrix, the most confidently wrong images.

Needs matplotlib (the ``plot`` extra). Figures are drawn on ``matplotlib.figure.Figure``
directly, which renders with Agg and never opens a window or touches pyplot's global
state, so it works on servers and in threads.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from barenet.errors import BarenetError

__all__ = ["MISSING", "available", "plot_confusion", "plot_history", "plot_mistakes"]

MISSING = "pictures need matplotlib: pip install 'barenet[plot]' (the run itself is complete)"


def available() -> bool:
    """Whether matplotlib can be imported."""
    return importlib.util.find_spec("matplotlib") is not None


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise BarenetError(MISSING) from None
    return Figure(**kwargs)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Loss and accuracy per epoch, training against validation, side by side."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(figsize=(10, 4), layout="constrained")
    for ax, key in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "training"), ("val_", "validation")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, marker=".", label=label)
        ax.set(xlabel="epoch", ylabel=key, title=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: str | Path) -> Path:
    """The confusion matrix (rows: true class, columns: predicted) with counts in cells."""
    n = len(classes)
    fig = _figure(figsize=(2 + 0.6 * n, 1.5 + 0.6 * n), layout="constrained")
    ax = fig.subplots()
    # A log-like colour scale so the small off-diagonal counts are visible beside the diagonal.
    ax.imshow(np.log1p(cm), cmap="Blues")
    threshold = np.log1p(cm).max() / 2
    for i in range(n):
        for j in range(n):
            colour = "white" if np.log1p(cm[i, j]) > threshold else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test set)")
    return _save(fig, path)


def plot_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    *,
    count: int = 16,
) -> Path:
    """A grid of the ``count`` wrongly classified images with the highest predicted
    probability, each titled with its true and predicted class.

    Parameters
    ----------
    images : ndarray (N, H, W)
    labels : ndarray (N,)
        True class ids.
    proba : ndarray (N, C)
        Predicted probabilities.
    """
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    worst = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:count]
    cols = 4
    rows = max(1, -(-len(worst) // cols))
    fig = _figure(figsize=(2.2 * cols, 2.5 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, worst, strict=False):
        ax.imshow(images[i], cmap="gray_r")
        p = proba[i, pred[i]]
        ax.set_title(f"true {classes[labels[i]]}\npredicted {classes[pred[i]]} {p:.0%}", fontsize=9)
    if len(worst) == 0:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle("most confidently wrong test images")
    return _save(fig, path)
