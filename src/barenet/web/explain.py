"""What the Inside and Why views show, computed from a network and one input image.

* ``first_filters``: the first layer's weights as images (28x28 per dense unit, the kernels
  of a convolution), each scaled to -127..127.
* ``feature_maps``: per convolution block, the maps after its activation and after its
  pooling, the strongest channels first.
* ``saliency``: the gradient of a class's logit with respect to the input pixels, from
  ``Sequential.input_gradient`` (barenet's own backward pass), and for the most likely other
  classes the gradient of their logit minus the chosen one's: the pixels that argue for
  them.

The model is used as is: callers hold its lock, since layers keep their inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from barenet.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from barenet.conv import AvgPool2D, Conv2D, MaxPool2D
from barenet.errors import ArgumentError
from barenet.layers import Dense
from barenet.model import Sequential

__all__ = ["ALTERNATIVES", "MAX_MAPS", "feature_maps", "first_filters", "saliency"]

MAX_MAPS = 16  #: channels shown per convolution block: more no longer read as a grid
ALTERNATIVES = 3  #: other classes the Why view explains
_ACTIVATIONS = (ReLU, LeakyReLU, Sigmoid, Tanh)
_POOLS = (MaxPool2D, AvgPool2D)


def _scaled(w: np.ndarray) -> list[list[int]]:
    """Each row of ``w`` scaled so its largest magnitude is 127, as integers."""
    w = w.reshape(len(w), -1).astype(np.float64)
    peak = np.abs(w).max(axis=1, keepdims=True)
    return np.rint(127 * w / np.where(peak > 0, peak, 1)).astype(np.int64).tolist()


def first_filters(model: Sequential, side: int, count: int) -> dict[str, Any]:
    """The first ``count`` filters of the first layer with weights: a Dense layer reading
    the ``side`` x ``side`` pixels (one image per unit) or a one-channel Conv2D (its
    kernels). ``ArgumentError`` for anything else."""
    first = next((l for l in model.layers if l.params), None)
    if isinstance(first, Dense) and first.in_features == side * side:
        w = first.params["weight"][:count]
        return {"kind": "dense", "units": first.out_features, "size": [side, side],
                "images": _scaled(w)}  # fmt: skip
    if isinstance(first, Conv2D) and first.in_channels == 1:
        w = first.params["weight"][:count]
        return {"kind": "conv", "units": first.out_channels, "size": list(w.shape[-2:]),
                "images": _scaled(w)}  # fmt: skip
    raise ArgumentError("the model has no first layer reading the pixels (Dense or Conv2D)")


def _maps(h: np.ndarray, order: np.ndarray, peak: float) -> list[dict[str, Any]]:
    """Channels ``order`` of one sample's maps ``h`` (C, H, W) as values in 0..1."""
    scale = 1.0 / peak if peak > 0 else 0.0
    return [
        {"channel": int(c), "values": np.round(h[c].ravel() * scale, 3).tolist()} for c in order
    ]


def feature_maps(model: Sequential, x: np.ndarray) -> list[dict[str, Any]]:
    """For each Conv2D of ``model`` on the one-sample batch ``x``: its activated maps and,
    when a pooling layer follows, the pooled maps, for the ``MAX_MAPS`` channels with the
    largest mean activation (strongest first). Values are divided by the largest magnitude
    among the maps shown, so maps of one block compare; ``strength`` is each channel's
    mean."""
    blocks: list[dict[str, Any]] = []
    open_block: dict[str, Any] | None = None
    h = x
    for i, layer in enumerate(model.layers):
        h = layer.forward(h, training=False)
        if isinstance(layer, Conv2D):
            open_block = {"layer": i, "channels": layer.out_channels, "maps": h[0]}
            blocks.append(open_block)
        elif open_block is None:
            continue
        elif h.ndim != 4 or (isinstance(layer, _POOLS) and "pooled" in open_block):
            open_block = None
        elif isinstance(layer, _POOLS):
            open_block["pooled"] = h[0]
        elif "pooled" not in open_block:  # BatchNorm, the activation: before the pooling
            open_block["maps"] = h[0]
        elif isinstance(layer, _ACTIVATIONS):
            # pooling before the activation (architectures.cnn: the two commute for max
            # pooling and ReLU): show the full-size maps activated too
            open_block["pooled"] = h[0]
            open_block["maps"] = layer.forward(open_block["maps"][None], training=False)[0]
            open_block = None
        else:
            open_block = None
    out = []
    for block in blocks:
        maps = block["maps"].astype(np.float64)
        strength = maps.mean(axis=(1, 2))
        order = np.argsort(-strength, kind="stable")[:MAX_MAPS]
        entry: dict[str, Any] = {
            "layer": block["layer"],
            "channels": block["channels"],
            "size": list(maps.shape[1:]),
            "strength": np.round(strength[order], 4).tolist(),
            "maps": _maps(maps, order, float(np.abs(maps[order]).max())),
        }
        if "pooled" in block:
            pooled = block["pooled"].astype(np.float64)
            entry["pooled_size"] = list(pooled.shape[1:])
            entry["pooled"] = _maps(pooled, order, float(np.abs(pooled[order]).max()))
        out.append(entry)
    return out


def _significant(a: np.ndarray) -> list[float]:
    """Values to 6 significant digits: enough for a finite-difference check, short JSON."""
    return [float(f"{v:.6g}") for v in np.asarray(a, np.float64).ravel()]


def saliency(model: Sequential, x: np.ndarray, target: int) -> dict[str, Any]:
    """Why ``model`` gives class ``target`` its score for the one-sample batch ``x``.

    ``gradient``: d logit[target] / d x, for x the pixels scaled to 0..1 (red where more
    ink raises the score); ``gradient_x_input``: the same times the input, the share of
    each inked pixel. ``alternatives``: the ``ALTERNATIVES`` most likely other classes,
    each with ``evidence`` = d (logit[k] - logit[target]) / d x, the pixels whose ink
    would tip the answer towards k.
    """
    proba = model.predict_proba(x)[0].astype(np.float64)
    classes = len(proba)
    if not isinstance(target, int) or isinstance(target, bool) or not 0 <= target < classes:
        raise ArgumentError(f"class must be an integer from 0 to {classes - 1}, got {target!r}")
    others = [int(k) for k in np.argsort(-proba, kind="stable") if k != target][:ALTERNATIVES]
    wanted = [target, *others]
    grads = model.input_gradient(np.repeat(x, len(wanted), axis=0), np.array(wanted))
    grads = grads.reshape(len(wanted), -1).astype(np.float64)
    pixels = x.reshape(-1).astype(np.float64)
    return {
        "class": target,
        "probability": round(float(proba[target]), 6),
        "gradient": _significant(grads[0]),
        "gradient_x_input": _significant(grads[0] * pixels),
        "alternatives": [
            {
                "class": k,
                "probability": round(float(proba[k]), 6),
                "evidence": _significant(g - grads[0]),
            }
            for k, g in zip(others, grads[1:], strict=True)
        ],
    }
