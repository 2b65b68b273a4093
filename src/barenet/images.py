"""Images as barenet's image layers see them (``barenet.conv``, ``barenet.pooling``).

Images are NCHW at the API, as in PyTorch: ``(batch, channels, height, width)``. The
pooling layers, and a Conv2D whose ``in_channels`` is 1, also take ``(N, H, W)`` batches
(MNIST as loaded) as one channel; the input gradient has the shape of the input.

Inside, each layer works on the *batch-last* view ``x.transpose(1, 2, 3, 0)``, shape
(C, H, W, N), and returns its result as the NCHW view of a batch-last array. Views cost
nothing, and consecutive image layers then move memory in long runs: a window offset, a
row of pixels and the whole batch behind each pixel are one contiguous stretch, so the
im2col copy, col2im and pooling never step through memory one value at a time, and a
convolution's matrix product reads and writes its operands as they lie.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from barenet.errors import ArgumentError, check_int

__all__ = ["as_images", "batch_first", "batch_last", "out_size", "pair", "windows"]


def pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints, as ``(height, width)``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
        return check_int(name, value[0]), check_int(name, value[1])
    n = check_int(name, value)
    return n, n


def out_size(size: int, kernel: int, stride: int) -> int:
    """How many windows of ``kernel`` pixels, moving by ``stride``, fit in ``size``."""
    return (size - kernel) // stride + 1


def as_images(layer: object, x: np.ndarray, channels: int | None) -> np.ndarray:
    """``x`` as (N, C, H, W); (N, H, W) is taken as one channel when ``channels`` is 1."""
    if x.ndim == 3 and channels in (1, None):
        return x[:, None]
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = "(N, C, H, W)" if channels is None else f"(N, {channels}, H, W)"
        if channels == 1:
            want += " or (N, H, W)"
        raise ArgumentError(f"{layer!r} expects input of shape {want}, got {x.shape}")
    return x


def batch_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) as its (C, H, W, N) view."""
    return x.transpose(1, 2, 3, 0)


def batch_first(a: np.ndarray) -> np.ndarray:
    """A batch-last (C, H, W, N) array as its NCHW view."""
    return a.transpose(3, 0, 1, 2)


def windows(xb: np.ndarray, kernel: tuple[int, int], stride: int, out: tuple[int, int]):
    """All windows of batch-last ``xb`` (C, H, W, N) as a view (C, Ho, Wo, N, kh, kw)."""
    w = sliding_window_view(xb, kernel, axis=(1, 2))
    return w[:, : stride * (out[0] - 1) + 1 : stride, : stride * (out[1] - 1) + 1 : stride]
