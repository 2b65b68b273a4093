"""Layers: the Layer contract, Dense, Flatten and Dropout.

Every layer follows one contract (docs/architecture.md describes it with the rest):

* ``forward(x, training=False) -> y`` returns its output and caches only what
  ``backward`` needs;
* ``backward(dy) -> dx`` returns the gradient with respect to its input and writes the
  gradients of its parameters, in place, into ``self.grads`` (same names as
  ``self.params``). Writing in place lets a model keep all parameters and gradients in
  one contiguous buffer, which makes the optimizer step a handful of vector operations.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from barenet import init as initialisers
from barenet.errors import (
    ArgumentError,
    StateError,
    check_float_dtype,
    check_int,
    check_positive,
    check_range,
)

__all__ = ["Dense", "Dropout", "Flatten", "Layer"]


_ONES: dict[tuple[int, np.dtype], np.ndarray] = {}


def ones_vector(n: int, dtype: Any) -> np.ndarray:
    """A read-only vector of ``n`` ones, kept for the next call: ``ones @ a`` (or
    ``a @ ones``) sums the rows (columns) of ``a`` as one matrix-vector product, 2-3x faster
    than ``np.sum`` over that axis, without a new vector per batch."""
    key = (n, np.dtype(dtype))
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:  # lengths seen so far (batch sizes, image rows): a few per model
            _ONES.clear()
        ones = _ONES[key] = np.ones(n, dtype)
        ones.flags.writeable = False
    return ones


class Layer:
    """Base class. Subclasses override ``forward``/``backward`` and, if they learn, ``params``."""

    #: Layers registered by class name, so a saved config can be turned back into layers.
    registry: ClassVar[dict[str, type[Layer]]] = {}

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Layer.registry[cls.__name__] = cls

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def param_backward(self, dy: np.ndarray) -> None:
        """Compute only the parameter gradients. A model calls this on its first learning
        layer, whose input gradient nobody needs; layers override it to skip that work."""
        self.backward(dy)

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.forward(x, training=training)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample's output given one sample's input shape (no batch axis)."""
        return input_shape

    def penalty(self) -> float:
        """Regularisation added to the loss (0 for most layers)."""
        return 0.0

    def reset_parameters(self, rng: initialisers.RngLike = None) -> None:
        """Draw fresh initial parameters from ``rng`` (layers without parameters: nothing)."""

    def reseed(self, rng: np.random.Generator) -> None:
        """Take a random generator for training-time randomness (Dropout uses it)."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable, so ``type(self)(**config)`` rebuilds it."""
        return {}

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        """Shapes of the arrays ``cls(**config)`` would hold, named as a model file stores
        them (``param/<name>``, ``state/<name>``), found without building the layer, so a
        file can be checked before anything is allocated. None when unknown: the layer is
        then built to find out. Layers that hold arrays override this."""
        return None

    def state(self) -> dict[str, np.ndarray]:
        """Arrays saved with the model besides ``params`` (BatchNorm's running statistics)."""
        return {}

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer: ``y = x @ W.T + b``.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths. ``W`` has shape ``(out_features, in_features)``, as in
        ``torch.nn.Linear``, so weights can be compared with PyTorch's directly.
        ``units`` is Keras's name for ``out_features`` (``Dense(784, units=128)``); the
        input width is never inferred, so ``Dense(128)`` alone is refused with a message
        saying so.
    init : str
        "he" (default, for ReLU) or "glorot" (for tanh/sigmoid); see ``barenet.init``.
    weight_l1, weight_l2, bias_l1, bias_l2 : float
        Penalties ``l1 * sum|w| + l2 * sum(w**2)`` added to the loss.
    rng : Generator, int or None
        Source of the initial weights.
    dtype : numpy dtype
        float32 by default; float64 for gradient checks.

    Backward, for ``dy`` of shape (N, out): ``dW = dy.T @ x``, ``db = sum(dy, axis=0)``,
    ``dx = dy @ W``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int | None = None,
        *,
        units: int | None = None,
        init: str = "he",
        weight_l1: float = 0.0,
        weight_l2: float = 0.0,
        bias_l1: float = 0.0,
        bias_l2: float = 0.0,
        rng: initialisers.RngLike = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        for name, penalty in (
            ("weight_l1", weight_l1),
            ("weight_l2", weight_l2),
            ("bias_l1", bias_l1),
            ("bias_l2", bias_l2),
        ):
            check_positive(name, penalty, allow_zero=True)
        if out_features is None and units is None:
            raise ArgumentError(
                f"Dense needs its input and output widths, Dense(in_features, out_features), "
                f"e.g. Dense(784, {in_features!r}); got only {in_features!r} (the input width "
                "is not inferred: Keras's Dense(units) is Dense(in_features, units) here)"
            )
        if out_features is not None and units is not None:
            raise ArgumentError("units is another name for out_features: give one, not both")
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int(
            "out_features", units if out_features is None else out_features
        )
        self.init = init
        self._initialiser = initialisers.get(init)
        self.weight_l1, self.weight_l2 = float(weight_l1), float(weight_l2)
        self.bias_l1, self.bias_l2 = float(bias_l1), float(bias_l2)
        self.dtype = check_float_dtype("dtype", dtype)
        self._x: np.ndarray | None = None
        self.reset_parameters(rng)

    def reset_parameters(self, rng: initialisers.RngLike = None) -> None:
        """Draw new weights (zero biases) from ``rng``."""
        shape = (self.out_features, self.in_features)
        self.params = {
            "weight": self._initialiser(shape, initialisers.as_rng(rng), self.dtype),
            "bias": np.zeros(self.out_features, dtype=self.dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ArgumentError(
                f"Dense({self.in_features}, {self.out_features}) expects input of shape "
                f"(N, {self.in_features}), got {x.shape}"
            )
        self._x = x
        y = x @ self.params["weight"].T
        y += self.params["bias"]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.param_backward(dy)
        return dy @ self.params["weight"]

    def param_backward(self, dy: np.ndarray) -> None:
        if self._x is None:
            raise StateError("Dense.backward called before forward")
        w, b = self.params["weight"], self.params["bias"]
        gw, gb = self.grads["weight"], self.grads["bias"]
        np.matmul(dy.T, self._x, out=gw)
        np.matmul(ones_vector(len(dy), dy.dtype), dy, out=gb)  # sum over the batch, by BLAS
        # Penalty gradients: d(l1*|w|)/dw = l1*sign(w), d(l2*w^2)/dw = 2*l2*w.
        for p, g, l1, l2 in (
            (w, gw, self.weight_l1, self.weight_l2),
            (b, gb, self.bias_l1, self.bias_l2),
        ):
            if l1:
                g += l1 * np.sign(p)
            if l2:
                g += (2 * l2) * p

    def penalty(self) -> float:
        w, b = self.params["weight"], self.params["bias"]
        total = 0.0
        for p, l1, l2 in ((w, self.weight_l1, self.weight_l2), (b, self.bias_l1, self.bias_l2)):
            if l1:
                total += l1 * float(np.abs(p).sum())
            if l2:
                total += l2 * float(np.square(p).sum())
        return total

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_features,)

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        out = check_int("out_features", config.get("out_features"))
        weight = (out, check_int("in_features", config.get("in_features")))
        return {"param/weight": weight, "param/bias": (out,)}

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "init": self.init,
        }
        for name in ("weight_l1", "weight_l2", "bias_l1", "bias_l2"):
            if getattr(self, name):
                config[name] = getattr(self, name)
        if self.dtype != np.float32:
            config["dtype"] = self.dtype.name
        return config


class Flatten(Layer):
    """Reshape ``(N, d1, d2, ...)`` to ``(N, d1*d2*...)``; backward restores the shape."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(input_shape)),)


class Dropout(Layer):
    """Inverted dropout: in training, zero each value with probability ``rate`` and scale the
    rest by ``1 / (1 - rate)`` so the expected output is unchanged; at inference, identity."""

    def __init__(self, rate: float = 0.5, *, rng: initialisers.RngLike = None) -> None:
        super().__init__()
        self.rate = check_range("rate", rate, "[0, 1)")
        self.rng = initialisers.as_rng(rng)
        self._mask: np.ndarray | None = None

    def reset_parameters(self, rng: initialisers.RngLike = None) -> None:
        """Draw fresh initial parameters from ``rng`` (layers without parameters: nothing)."""

    def reseed(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = 1.0 - self.rate
        # One uniform draw per value, compared and scaled in the input's dtype (no upcast).
        mask = self.rng.random(x.shape, dtype=np.float32) < keep
        self._mask = mask.astype(x.dtype)
        self._mask *= x.dtype.type(1.0 / keep)
        return x * self._mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy if self._mask is None else dy * self._mask

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}
