"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, and a name registry."""

from __future__ import annotations

from typing import Any

import numpy as np

from barenet import parallel
from barenet.errors import ArgumentError, check_range
from barenet.layers import Layer

__all__ = ["LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh", "get", "sigmoid", "softmax"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` computed from ``exp(-|x|)``, which never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` after subtracting the row maximum, so exp never overflows."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _relu(out: np.ndarray, x: np.ndarray) -> None:
    np.maximum(x, 0, out=out)


def _relu_grad(out: np.ndarray, dy: np.ndarray, y: np.ndarray) -> None:
    np.multiply(dy, y > 0, out=out)


class ReLU(Layer):
    """``max(0, x)``; the gradient passes where the output is positive."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        self._y = parallel.map_parts(_relu, np.empty_like(x), x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return parallel.map_parts(_relu_grad, np.empty_like(dy), dy, self._y)


class LeakyReLU(Layer):
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check_range("negative_slope", negative_slope, "[0, 1)")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._positive = x > 0
        return np.where(self._positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.where(self._positive, dy, dy * dy.dtype.type(self.negative_slope))

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Sigmoid(Layer):
    """``s = 1 / (1 + exp(-x))``; ``ds/dx = s * (1 - s)``. No overflow warning for any x."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._y = sigmoid(x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self._y * (1 - self._y)


class Tanh(Layer):
    """``t = tanh(x)``; ``dt/dx = 1 - t**2``."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * (1 - self._y * self._y)


class Softmax(Layer):
    """Row-wise softmax. Backward is the Jacobian-vector product
    ``dx = s * (dy - sum(dy * s, axis=1))``.

    Followed by ``CrossEntropy`` in a ``Sequential`` model, it is fused with the loss: the
    model trains on the logits with the stable gradient ``(p - y) / N``.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._y = softmax(x, axis=1)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        s = self._y
        return s * (dy - (dy * s).sum(axis=1, keepdims=True))


_REGISTRY: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softmax": Softmax,
}


def get(name: str) -> Layer:
    """A new activation layer by name: "relu", "leaky_relu", "sigmoid", "tanh", "softmax"."""
    try:
        return _REGISTRY[name.lower()]()
    except (KeyError, AttributeError):
        choices = ", ".join(_REGISTRY)
        raise ArgumentError(f"activation must be one of {choices}; got {name!r}") from None
