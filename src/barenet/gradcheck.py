"""``check_grad``: compare a layer's or loss's analytic gradients with central differences.

This is how barenet checks its own layers; use it on a layer you write yourself::

    result = bn.check_grad(MyLayer(...), x)
    assert result < 1e-6          # the largest relative error
    result["weight"]              # one array's error; result.errors holds them all

Run it in float64 (build the layer with ``dtype=np.float64``): float32 differences are
too coarse to tell a right gradient from a slightly wrong one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from barenet.errors import ArgumentError
from barenet.layers import Layer
from barenet.losses import Loss

__all__ = ["GradCheck", "central_differences", "check_grad", "relative_error"]


class GradCheck(float):
    """The largest relative error (a float, so ``result < 1e-6`` reads naturally), with the
    error of each checked array in ``errors`` and by name: ``result["input"]``."""

    errors: dict[str, float]

    def __new__(cls, errors: dict[str, float]) -> GradCheck:
        result = super().__new__(cls, max(errors.values(), default=0.0))
        result.errors = dict(errors)
        return result

    def __getitem__(self, name: str) -> float:
        return self.errors[name]

    def __iter__(self) -> Any:
        return iter(self.errors)

    def __contains__(self, name: object) -> bool:
        return name in self.errors

    def keys(self) -> Any:
        return self.errors.keys()

    def values(self) -> Any:
        return self.errors.values()

    def items(self) -> Any:
        return self.errors.items()

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v:.2e}" for k, v in self.errors.items())
        return f"GradCheck(max={float(self):.2e}; {parts})"


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``|a - n| / max(|a| + |n|, tiny)`` over whole arrays (norms), 0 when both are zero."""
    num = float(np.linalg.norm(analytic - numeric))
    den = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return 0.0 if den == 0 else num / max(den, 1e-300)


def central_differences(
    f: Callable[[], float], flat: np.ndarray, idx: Any, eps: float
) -> np.ndarray:
    """``(f() at flat[i] + eps  -  f() at flat[i] - eps) / (2 eps)`` for each entry ``i`` of
    ``idx``; ``flat`` (a 1-D view of the array ``f`` reads) is nudged in place and put
    back. The doctor uses it on a sample of entries, ``check_grad`` on all of them."""
    numeric = np.empty(len(idx), dtype=np.float64)
    for k, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        numeric[k] = (up - down) / (2 * eps)
    return numeric


def _numeric(f: Callable[[], float], a: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of ``f`` for every element of ``a``, shaped like ``a``."""
    return central_differences(f, a.reshape(-1), range(a.size), eps).reshape(a.shape)


def check_grad(
    obj: Layer | Loss,
    x: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    training: bool = False,
    eps: float = 1e-6,
    seed: int = 0,
) -> GradCheck:
    """Relative error between analytic and numeric gradients, per input and parameter.

    For a layer the scalar checked is ``sum(forward(x) * r)`` with a fixed random ``r``,
    whose gradient with respect to the output is ``r``. For a loss it is the loss itself,
    with ``targets``. With ``training=True`` a stochastic layer (Dropout) is reseeded
    before every forward pass so each one draws the same mask.
    """
    x = np.array(x, dtype=np.float64 if np.asarray(x).dtype.kind in "iub" else None)
    if isinstance(obj, Loss):
        if targets is None:
            raise ArgumentError("check_grad on a loss needs targets")

        def loss_value() -> float:
            return obj.forward(x, targets)

        loss_value()
        return GradCheck({"input": relative_error(obj.backward(), _numeric(loss_value, x, eps))})
    if not isinstance(obj, Layer):
        raise ArgumentError(f"check_grad takes a Layer or a Loss, got {obj!r}")

    def forward() -> np.ndarray:
        if training:
            obj.reseed(np.random.default_rng(seed))
        return obj.forward(x, training=training)

    r = np.random.default_rng(seed).standard_normal(forward().shape).astype(x.dtype)

    def value() -> float:
        return float(np.sum(forward().astype(np.float64) * r))

    forward()
    for g in obj.grads.values():
        g[...] = 0
    analytic_x = obj.backward(r)
    errors = {"input": relative_error(analytic_x, _numeric(value, x, eps))}
    analytic = {name: g.copy() for name, g in obj.grads.items()}
    for name, p in obj.params.items():
        errors[name] = relative_error(analytic[name], _numeric(value, p, eps))
    return GradCheck(errors)
