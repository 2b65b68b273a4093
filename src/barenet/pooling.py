"""Pooling layers: MaxPool2D, AvgPool2D and GlobalAvgPool2D over NCHW images
(batch-last inside, see ``barenet.images``); the channels are split over
``barenet.parallel``."""

from __future__ import annotations

from typing import Any

import numpy as np

from barenet import parallel
from barenet.errors import ArgumentError, check_int
from barenet.images import as_images, batch_first, batch_last, out_size, pair, windows
from barenet.layers import Layer

__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]


class _Pool2D(Layer):
    """Shared geometry of the window pooling layers (no padding; the remainder is dropped,
    as PyTorch does by default)."""

    def __init__(self, kernel_size: int | tuple[int, int] = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = None if stride is None else check_int("stride", stride)
        self._in_shape: tuple[int, ...] = ()
        self._out: tuple[int, int] = (0, 0)
        self._dtype = np.dtype(np.float32)

    @property
    def _tiles(self) -> bool:
        """Whether windows tile the image (stride == kernel), so a reshape finds them."""
        return self.stride is None or self.kernel_size == (self.stride, self.stride)

    def _steps(self) -> tuple[int, int]:
        """How far a window moves down and across (the kernel's sides when no stride)."""
        return self.kernel_size if self.stride is None else (self.stride, self.stride)

    def _geometry(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw) = self.kernel_size, self._steps()
        ho, wo = out_size(h, kh, sh), out_size(w, kw, sw)
        if ho < 1 or wo < 1:
            raise ArgumentError(
                f"{self!r} needs images of at least {self.kernel_size}, got {(h, w)}"
            )
        return ho, wo

    def _window_view(self, x: np.ndarray) -> np.ndarray:
        """Batch-last windows (C, Ho, Wo, N, kh, kw) of ``x``: a view, no copy."""
        self._in_shape = x.shape
        xb = batch_last(as_images(self, x, None))
        ho, wo = self._out = self._geometry(*xb.shape[1:3])
        (kh, kw) = self.kernel_size
        if self._tiles:
            c, n = xb.shape[0], xb.shape[3]
            tiles = xb[:, : ho * kh, : wo * kw].reshape(c, ho, kh, wo, kw, n)
            return tiles.transpose(0, 1, 3, 5, 2, 4)
        return windows(xb, self.kernel_size, self._steps()[0], (ho, wo))  # a square stride

    def _positions(self) -> list[tuple[int, int]]:
        """The ``(i, j)`` offsets inside a window, in row-major order."""
        kh, kw = self.kernel_size
        return [(i, j) for i in range(kh) for j in range(kw)]

    def _window_grad(
        self, q: int, part: slice, dyb: np.ndarray, out: np.ndarray | None
    ) -> np.ndarray:
        """The gradient (C[part], Ho, Wo, N) that the pixels at position ``q`` (row-major)
        of every window of the channels ``part`` receive from the batch-last output
        gradient ``dyb``, written into ``out`` when given."""
        raise NotImplementedError

    def _input_grad(self, dyb: np.ndarray) -> np.ndarray:
        """The input gradient from the batch-last output gradient ``dyb``, by channels."""
        n, c = self._in_shape[0], 1 if len(self._in_shape) == 3 else self._in_shape[1]
        dxb = np.zeros((c, *self._in_shape[-2:], n), dtype=self._dtype)
        parallel.split(self._scatter, c, dxb, dyb, values=dxb.size)
        return batch_first(dxb).reshape(self._in_shape)

    def _scatter(self, part: slice, dxb: np.ndarray, dyb: np.ndarray) -> None:
        """Add each window's gradient onto the pixels of the channels ``part`` of ``dxb``.
        Windows that do not overlap write straight into the strided view of their pixels;
        overlapping ones add up."""
        (ho, wo), (kh, kw), (sh, sw) = self._out, self.kernel_size, self._steps()
        disjoint = sh >= kh and sw >= kw
        for q, (i, j) in enumerate(self._positions()):
            target = dxb[part, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
            if disjoint:
                self._window_grad(q, part, dyb, target)
            else:
                target += self._window_grad(q, part, dyb, None)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        channels = input_shape[0] if len(input_shape) == 3 else 1
        return (channels, *self._geometry(*input_shape[-2:]))

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": self.stride}


class MaxPool2D(_Pool2D):
    """Largest value of each ``kernel_size`` window, moving by ``stride`` (default: the
    kernel size). The gradient goes to the first largest value of each window, as in
    PyTorch, so ties (zeros after a ReLU) do not multiply it.

    Both passes loop over the ``kh * kw`` positions of a window with whole-array
    operations: a reduction over a short last axis would cost a call per window.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        win = self._window_view(x)
        self._dtype = x.dtype
        y = np.empty(win.shape[:4], dtype=x.dtype)
        self._argmax = np.empty(y.shape, dtype=np.uint8)
        parallel.split(self._largest, len(y), win, y, self._argmax, values=win.size)
        return batch_first(y)

    def _largest(self, part: slice, win: np.ndarray, y: np.ndarray, argmax: np.ndarray) -> None:
        """Write the largest value of each window of the channels ``part`` into ``y``, and
        into ``argmax`` its position (row-major), the first if there are ties: the last
        position that raised the running maximum, i.e. the largest such q."""
        win, y, argmax = win[part], y[part], argmax[part]
        first, *rest = self._positions()
        y[...] = win[..., first[0], first[1]]
        argmax[...] = 0
        raised = np.empty(y.shape, dtype=np.uint8)
        for q, (i, j) in enumerate(rest, start=1):
            value = win[..., i, j]
            np.greater(value, y, out=raised, casting="unsafe")
            raised *= np.uint8(q)
            np.maximum(argmax, raised, out=argmax)
            np.maximum(y, value, out=y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._input_grad(batch_last(as_images(self, dy, None)))

    def _window_grad(
        self, q: int, part: slice, dyb: np.ndarray, out: np.ndarray | None
    ) -> np.ndarray:
        return np.multiply(dyb[part], self._argmax[part] == q, out=out, dtype=dyb.dtype)


class AvgPool2D(_Pool2D):
    """Mean of each ``kernel_size`` window, moving by ``stride`` (default: the kernel size);
    each input pixel gets ``dy / (kh * kw)`` from every window it belongs to."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        win = self._window_view(x)
        self._dtype = x.dtype
        y = np.empty(win.shape[:4], dtype=x.dtype)
        parallel.split(self._mean, len(y), win, y, values=win.size)
        return batch_first(y)

    def _mean(self, part: slice, win: np.ndarray, y: np.ndarray) -> None:
        """Write the mean of each window of the channels ``part`` into ``y``."""
        win, y = win[part], y[part]
        first, *rest = self._positions()
        y[...] = win[..., first[0], first[1]]
        for i, j in rest:
            y += win[..., i, j]
        y *= y.dtype.type(1.0 / (len(rest) + 1))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        kh, kw = self.kernel_size
        return self._input_grad(
            batch_last(as_images(self, dy, None)) * dy.dtype.type(1.0 / (kh * kw))
        )

    def _window_grad(
        self, q: int, part: slice, dyb: np.ndarray, out: np.ndarray | None
    ) -> np.ndarray:
        """Every position of a window gets the same share: ``dyb`` is already divided."""
        if out is None:
            return dyb[part]
        out[...] = dyb[part]
        return out


class GlobalAvgPool2D(Layer):
    """Mean over height and width: (N, C, H, W) -> (N, C)."""

    def __init__(self) -> None:
        super().__init__()
        self._in_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 4:
            raise ArgumentError(
                f"GlobalAvgPool2D expects input of shape (N, C, H, W), got {x.shape}"
            )
        self._in_shape = x.shape
        return x.mean(axis=(2, 3), dtype=x.dtype)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        h, w = self._in_shape[2:]
        scaled = dy * dy.dtype.type(1.0 / (h * w))
        return np.broadcast_to(scaled[:, :, None, None], self._in_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0],)
