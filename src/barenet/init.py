"""Weight initialisers: He (for ReLU) and Glorot (for tanh/sigmoid), drawn from a Generator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from barenet.errors import ArgumentError

__all__ = ["RngLike", "as_rng", "fans", "get", "glorot_uniform", "he_normal", "he_uniform", "zeros"]

RngLike = np.random.Generator | int | None
Shape = tuple[int, ...]
Initialiser = Callable[..., np.ndarray]


def fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped like PyTorch's: (out, in) or (out, in, kh, kw)."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def as_rng(rng: RngLike) -> np.random.Generator:
    """Return a Generator: pass one through, seed a new one from an int >= 0, or a fresh one
    (seeded by the operating system, not reproducible) for None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        if rng is not None and rng < 0:
            raise ArgumentError(f"rng seed must be >= 0, got {rng!r}")
        return np.random.default_rng(rng)
    raise ArgumentError(f"rng must be a numpy.random.Generator, an int or None, got {rng!r}")


def he_normal(shape: Shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """N(0, 2 / fan_in): keeps the variance of ReLU activations constant from layer to layer."""
    fan_in, _ = fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def he_uniform(shape: Shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """U(-b, b) with b = sqrt(6 / fan_in): He's variance from a uniform draw."""
    bound = np.sqrt(6.0 / fans(shape)[0])
    return rng.uniform(-bound, bound, shape).astype(dtype)


def glorot_uniform(shape: Shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """U(-b, b) with b = sqrt(6 / (fan_in + fan_out)): suits tanh and sigmoid."""
    bound = np.sqrt(6.0 / sum(fans(shape)))
    return rng.uniform(-bound, bound, shape).astype(dtype)


def zeros(shape: Shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """All zeros (biases)."""
    return np.zeros(shape, dtype=dtype)


_REGISTRY: dict[str, Initialiser] = {
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot": glorot_uniform,
    "glorot_uniform": glorot_uniform,
    "xavier": glorot_uniform,
    "zeros": zeros,
}


def get(name: str) -> Initialiser:
    """Look an initialiser up by name ("he", "glorot", ...)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        choices = ", ".join(sorted(_REGISTRY))
        raise ArgumentError(f"init must be one of {choices}; got {name!r}") from None
