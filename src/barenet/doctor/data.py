"""The data the doctor was given: the scale of the inputs and the sanity of the labels."""

from __future__ import annotations

import math

import numpy as np

from barenet.data_checks import UNSCALED, peak_magnitude
from barenet.doctor.report import Finding


def check_labels(y: np.ndarray, classes: int | None, x: np.ndarray) -> tuple[list[Finding], bool]:
    """Findings about class labels, and whether the loss can be computed with them."""
    ids = _class_ids(y, classes)
    if ids is None:
        return [
            Finding(
                "error",
                "labels",
                f"labels of shape {y.shape} and dtype {y.dtype} are neither class ids (N,) "
                f"nor one-hot rows (N, {classes})",
                "give integer class ids, e.g. y.astype(int)",
            )
        ], False
    if classes is not None and len(ids) and (ids.min() < 0 or ids.max() >= classes):
        return [
            Finding(
                "error",
                "labels",
                f"labels range over [{ids.min()}, {ids.max()}] but the model has {classes} outputs",
                f"class ids must lie in [0, {classes}): renumber them, or widen the last layer",
            )
        ], False
    counts = np.bincount(ids - ids.min())
    if np.count_nonzero(counts) == 1:
        return [
            Finding(
                "warning",
                "labels",
                f"every label in the batch is {ids[0]}",
                "check how the labels were read, and shuffle before taking a batch",
            )
        ], True
    return _unrelated_labels(ids, counts, x), True


def _class_ids(y: np.ndarray, classes: int | None) -> np.ndarray | None:
    """``y`` as integer class ids, from ids or one-hot rows; None when it is neither."""
    if y.ndim == 2 and classes is not None and y.shape[1] == classes:
        return y.argmax(axis=1)
    if y.ndim == 1 and (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)):
        return y.astype(np.int64)
    return None


def _unrelated_labels(ids: np.ndarray, counts: np.ndarray, x: np.ndarray) -> list[Finding]:
    """A warning when nearest neighbours in ``x`` share labels no more often than chance.

    Neighbours in input space share labels far more often than chance in any learnable
    data set; shuffled or misaligned labels bring that down to chance. Batches of fewer
    than 50 samples say too little to tell.
    """
    n = len(ids)
    if n < 50:
        return []
    flat = x.reshape(n, -1).astype(np.float64)
    sq = np.einsum("ij,ij->i", flat, flat)
    dist = sq[:, None] + sq[None, :] - 2 * (flat @ flat.T)
    np.fill_diagonal(dist, np.inf)
    agree = float(np.mean(ids[dist.argmin(axis=1)] == ids))
    chance = float(np.sum(counts * (counts - 1)) / (n * (n - 1)))
    margin = 3 * math.sqrt(chance * (1 - chance) / n)
    if agree > chance + margin:
        return []
    return [
        Finding(
            "warning",
            "labels_shuffled",
            f"a sample's nearest neighbour in x shares its label {agree:.0%} of the "
            f"time, about chance ({chance:.0%}): the labels look unrelated to the inputs",
            "check that x and y were shuffled together and come from the same files",
        )
    ]


def check_inputs(x_raw: np.ndarray) -> list[Finding]:
    """A finding when the inputs are far from about [-1, 1] or not finite."""
    if np.issubdtype(x_raw.dtype, np.integer) or x_raw.dtype == np.bool_:
        peak = peak_magnitude(x_raw)
        if peak > UNSCALED:
            return [
                Finding(
                    "warning",
                    "input_scale",
                    f"inputs are {x_raw.dtype} integers up to {peak:.4g}",
                    "scale them to about [-1, 1], e.g. x / 255 for pixels",
                )
            ]
        return []
    # floats as they are: a float64 copy of a whole training set only to look at it
    x = x_raw if x_raw.dtype.kind == "f" else x_raw.astype(np.float64)
    peak = peak_magnitude(x)  # NaN or infinite when one of the inputs is
    if not np.isfinite(peak):
        return [
            Finding(
                "error",
                "input_scale",
                "inputs contain NaN or infinite values",
                "find where they come from (np.isnan(x).any(axis=...)) and drop or fill them",
            )
        ]
    if peak > UNSCALED:
        return [
            Finding(
                "warning",
                "input_scale",
                f"inputs reach |x| = {peak:.4g}",
                "scale them to about [-1, 1]: pixels / 255, or standardise each feature",
            )
        ]
    return []
