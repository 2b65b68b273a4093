"""The networks the web demo serves: each wrapped with what the page needs to know about
it (dataset, class names, input shape, how pictures are prepared) and the answers the
page asks of it (probabilities, activations, feature maps, saliency, first-layer weights).

A network's layers cache their inputs, so each ``Served`` answers one request at a time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from barenet.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from barenet.conv import Conv2D
from barenet.datasets.specs import get_spec
from barenet.errors import ArgumentError, BarenetError, ModelFileError
from barenet.io import load_model
from barenet.layers import Dense
from barenet.model import Sequential
from barenet.preprocess import PREPROCESSORS
from barenet.web import explain

__all__ = ["SIDE", "ModelSpec", "Served", "resolve_model"]

SIDE = 28  #: the pictures' side, in pixels
_HIDDEN = (ReLU, LeakyReLU, Sigmoid, Tanh)  # layers whose output is a hidden activation

#: A network to serve: a shipped name ("mnist-mlp"), a model file, or a model object.
ModelSpec = str | Path | Sequential


def resolve_model(spec: ModelSpec) -> Sequential:
    """Load ``spec``: a shipped network's name, a ``.npz`` file, or a model (returned as is)."""
    if isinstance(spec, Sequential):
        return spec
    from barenet import pretrained

    if isinstance(spec, str) and spec in pretrained.PRETRAINED:
        return pretrained.load_pretrained(spec)
    path = Path(spec)
    if not path.is_file():
        names = ", ".join(pretrained.PRETRAINED)
        raise ArgumentError(f"model must be one of {names} or a model file, got {str(spec)!r}")
    return load_model(path)


@dataclass
class Served:
    """A network the server answers with, and what the page needs to know about it."""

    name: str
    model: Sequential
    dataset: str
    classes: list[str]
    input_shape: tuple[int, ...]
    pictures: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def check(cls, name: str, model: Sequential) -> Served:
        """Wrap ``model``; ``ModelFileError`` unless it reads one 28x28 picture."""
        meta = model.metadata or {}
        shape = tuple(model.input_shape or (SIDE, SIDE))
        if math.prod(shape) != SIDE * SIDE:
            raise ModelFileError(f"model {name!r} reads inputs of shape {shape}, not 28x28 images")
        try:
            dataset = get_spec(meta.get("dataset", "mnist")).name
            with np.errstate(all="ignore"):
                width = model.predict_proba(np.zeros((1, *shape), model.dtype)).shape[1]
        except (BarenetError, IndexError) as e:
            raise ModelFileError(f"model {name!r} cannot classify 28x28 images: {e}") from None
        classes = [str(c) for c in meta.get("classes", get_spec(dataset).classes)]
        if len(classes) != width:
            classes = [str(i) for i in range(width)]
        preprocess = meta.get("preprocess")
        pictures = preprocess.get("pictures", "mnist") if isinstance(preprocess, dict) else "mnist"
        return cls(name, model, dataset, classes, shape, str(pictures))

    def prepare(self, picture: np.ndarray) -> np.ndarray:
        """Any grayscale picture as the 28x28 uint8 image this network reads, prepared
        as ``barenet predict`` prepares it (by the model's ``preprocess`` metadata)."""
        return PREPROCESSORS.get(self.pictures, PREPROCESSORS["mnist"])(picture)

    @property
    def kind(self) -> str:
        """ "cnn" for a network with convolutions, else "mlp"."""
        return "cnn" if any(isinstance(l, Conv2D) for l in self.model.layers) else "mlp"

    @property
    def accuracy(self) -> float:
        """Its test accuracy as recorded in its metadata, else its validation accuracy
        (a network trained on the Learn page), else 0."""
        meta = self.model.metadata or {}
        value = meta.get("test_accuracy", meta.get("val_accuracy"))
        return float(value) if isinstance(value, (int, float)) else 0.0

    def describe(self) -> dict[str, Any]:
        widths = [l.out_features for l in self.model.layers if isinstance(l, Dense)]
        channels = [l.out_channels for l in self.model.layers if isinstance(l, Conv2D)]
        meta = self.model.metadata or {}
        shape = "-".join(map(str, [SIDE * SIDE, *widths]))
        if channels:
            shape = f"conv {'-'.join(map(str, channels))}, dense {'-'.join(map(str, widths))}"
        return {
            "name": self.name,
            "dataset": self.dataset,
            "classes": self.classes,
            "kind": self.kind,
            "layers": [SIDE * SIDE, *widths],
            "shape": shape,
            "params": self.model.num_params,
            "test_accuracy": meta.get("test_accuracy"),
            "val_accuracy": meta.get("val_accuracy"),
        }

    def _input(self, image: np.ndarray) -> np.ndarray:
        """A 28x28 uint8 image as the one-sample batch the network reads (pixels / 255)."""
        x = (image.astype(np.float32) / np.float32(255)).reshape(1, *self.input_shape)
        return x.astype(self.model.dtype, copy=False)

    def inside(self, image: np.ndarray) -> dict[str, Any]:
        """The convolution blocks' feature maps for one 28x28 uint8 image (none for an MLP)."""
        with self.lock, np.errstate(all="ignore"):
            blocks = explain.feature_maps(self.model, self._input(image))
        return {"model": self.name, "kind": self.kind, "blocks": blocks}

    def why(self, image: np.ndarray, target: int | None) -> dict[str, Any]:
        """Saliency of class ``target`` (default: the answer) for one 28x28 uint8 image."""
        x = self._input(image)
        with self.lock, np.errstate(all="ignore"):
            if target is None:
                target = int(self.model.predict_proba(x)[0].argmax())
            result = explain.saliency(self.model, x, target)
        result["label"] = self.classes[result["class"]]
        for alt in result["alternatives"]:
            alt["label"] = self.classes[alt["class"]]
        return {"model": self.name, "classes": self.classes, **result}

    def answer(self, image: np.ndarray) -> dict[str, Any]:
        """Probabilities and hidden activations for one 28x28 uint8 image."""
        x = (image.astype(np.float32) / np.float32(255)).reshape(1, *self.input_shape)
        x = x.astype(self.model.dtype, copy=False)
        hidden = []
        with self.lock, np.errstate(all="ignore"):  # layers cache their inputs: one at a time
            h = x
            for i, layer in enumerate(self.model.layers[:-1]):
                h = layer.forward(h)
                if isinstance(layer, _HIDDEN) and h.ndim == 2:
                    hidden.append({"layer": i, "units": h.shape[1], "values": _rounded(h[0])})
            proba = self.model.predict_proba(x)[0].astype(np.float64)
        top = int(proba.argmax())
        return {
            "model": self.name,
            "classes": self.classes,
            "probabilities": _rounded(proba, 6),
            "top": top,
            "label": self.classes[top],
            "input": image.reshape(-1).tolist(),
            "activations": hidden,
        }

    def first_weights(self, count: int) -> dict[str, Any]:
        """The first ``count`` filters of the first layer, each an image in -127..127:
        a dense unit's 28x28 incoming weights, or a convolution's kernel."""
        try:
            filters = explain.first_filters(self.model, SIDE, count)
        except ArgumentError:
            raise ArgumentError(
                f"model {self.name!r} has no first layer reading the pixels"
            ) from None
        return {"model": self.name, **filters}


def _rounded(a: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in a]
