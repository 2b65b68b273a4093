"""Classification metrics: accuracy, confusion matrix, per-class precision/recall/F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from barenet.errors import ArgumentError

__all__ = ["accuracy", "classification_report", "confusion_matrix", "format_report"]


def _class_ids(y: np.ndarray, name: str) -> np.ndarray:
    """Class ids from ids (N,) or one-hot rows (N, C)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    y = y.reshape(len(y)) if y.ndim == 2 else y
    if y.ndim != 1:
        raise ArgumentError(f"{name} must be class ids (N,) or one-hot (N, C), got {y.shape}")
    return y.astype(np.int64, copy=False)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples whose predicted class id equals the true one."""
    t, p = _class_ids(y_true, "y_true"), _class_ids(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ArgumentError(f"y_true and y_pred differ in length: {len(t)} vs {len(p)}")
    return float(np.mean(t == p)) if len(t) else 0.0


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None
) -> np.ndarray:
    """``(C, C)`` counts: row = true class, column = predicted class."""
    t, p = _class_ids(y_true, "y_true"), _class_ids(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ArgumentError(f"y_true and y_pred differ in length: {len(t)} vs {len(p)}")
    c = (
        num_classes
        if num_classes is not None
        else int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    )
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= c):
        raise ArgumentError(f"class ids must be in [0, {c})")
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None
) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` and ``support`` (arrays of length C).

    precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their harmonic mean; a class
    never predicted (or never present) gets 0 rather than a division by zero.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual.astype(np.int64)}


def format_report(report: dict[str, np.ndarray], class_names: Sequence[str] | None = None) -> str:
    """A plain-text table of ``classification_report``'s result, with macro averages."""
    n = len(report["support"])
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    width = max(12, *(len(s) for s in names))
    lines = [f"{'class':<{width}} precision  recall     f1  support"]
    for i in range(n):
        p, r, f = report["precision"][i], report["recall"][i], report["f1"][i]
        lines.append(f"{names[i]:<{width}} {p:9.4f} {r:7.4f} {f:6.4f} {report['support'][i]:8d}")
    p, r, f = (float(report[k].mean()) for k in ("precision", "recall", "f1"))
    lines.append(f"{'macro avg':<{width}} {p:9.4f} {r:7.4f} {f:6.4f} {report['support'].sum():8d}")
    return "\n".join(lines)
