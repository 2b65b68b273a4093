"""Conv2D: 2-D convolution over NCHW images (batch-last inside, see ``barenet.images``).

Convolution is im2col + one matrix product: every ``kh x kw`` window of the padded input
becomes a column (``sliding_window_view`` makes the windows without copying), so with
``K = C * kh * kw`` and ``P = H_out * W_out * N``::

    cols : (K, P)          y = W.reshape(O, K) @ cols + b

and backward is ``dW = dy @ cols.T``, ``dcols = W.T @ dy``, then col2im adds each
window's gradient back onto the pixels it was read from (``kh * kw`` strided additions,
the padding cropped off by clipping each one to the image).

The pooling layers live in ``barenet.pooling`` and are importable from here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from barenet import init as initialisers
from barenet import parallel
from barenet.errors import ArgumentError, StateError, check_float_dtype, check_int
from barenet.images import as_images, batch_first, batch_last, out_size, pair, windows
from barenet.layers import Layer, ones_vector
from barenet.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D

__all__ = ["AvgPool2D", "Conv2D", "GlobalAvgPool2D", "MaxPool2D"]


def _valid(offset: int, pad: int, stride: int, size: int, out: int) -> tuple[int, int, int]:
    """Outputs ``[first, stop)`` whose window, at ``offset`` inside it, reads a pixel of the
    image rather than its padding, and the image row (column) ``first`` reads."""
    first = max(0, -((offset - pad) // stride))
    stop = min(out, (size - 1 + pad - offset) // stride + 1)
    return first, stop, first * stride + offset - pad


def _col2im(dcols: np.ndarray, dx: np.ndarray, stride: int, pads: tuple[int, int]) -> None:
    """Add window gradients ``dcols`` (C, kh, kw, Ho, Wo, N) onto the batch-last image
    gradient ``dx`` (C, H, W, N): ``dx[:, s*y + i - top, s*x + j - left] += dcols[:, i, j, y, x]``
    wherever that pixel is inside the image (the padding's share is dropped)."""
    (kh, kw, ho, wo), (h, w) = dcols.shape[1:5], dx.shape[1:3]
    for i in range(kh):
        y0, y1, r = _valid(i, pads[0], stride, h, ho)
        for j in range(kw):
            x0, x1, c = _valid(j, pads[1], stride, w, wo)
            if y1 > y0 and x1 > x0:
                rows = slice(r, r + stride * (y1 - y0 - 1) + 1, stride)
                columns = slice(c, c + stride * (x1 - x0 - 1) + 1, stride)
                dx[:, rows, columns] += dcols[:, i, j, y0:y1, x0:x1]


#: ``dW = dy @ cols.T`` is split over threads by the rows of ``cols`` when it has at least
#: this many (``C * kh * kw``); a first layer's few rows go to one BLAS call.
_SPLIT_ROWS = 64

# Kernels over a slice ``part`` of the channels (or of the columns of a product): the
# layers hand them to ``parallel.split``, which may run parts on separate threads.


def _im2col(
    part: slice,
    xb: np.ndarray,
    cols: np.ndarray,
    kernel: tuple[int, int],
    stride: int,
    pads: tuple[int, int, int, int],
) -> None:
    """Copy the windows of the channels ``part`` of batch-last ``xb`` (C, H, W, N), padded
    by ``pads`` (top, bottom, left, right), into ``cols`` (C, kh, kw, Ho, Wo, N)."""
    top, bottom, left, right = pads
    image = xb[part]
    if top or bottom or left or right:
        _, h, w, n = xb.shape
        image = np.zeros((len(image), h + top + bottom, w + left + right, n), xb.dtype)
        image[:, top : top + h, left : left + w] = xb[part]
    views = windows(image, kernel, stride, cols.shape[3:5])
    np.copyto(cols[part], views.transpose(0, 4, 5, 1, 2, 3))


def _affine(
    part: slice, weight: np.ndarray, cols: np.ndarray, bias: np.ndarray, y: np.ndarray
) -> None:
    """``y = weight @ cols + bias`` for the columns ``part``."""
    np.matmul(weight, cols[:, part], out=y[:, part])
    y[:, part] += bias


def _col2im_part(
    part: slice, dcols: np.ndarray, dx: np.ndarray, stride: int, pads: tuple[int, int]
) -> None:
    _col2im(dcols[part], dx[part], stride, pads)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in PyTorch) over NCHW images.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int
    padding : int or "same"
        Zeros added on each side. "same" (stride 1 only) keeps height and width; an
        even kernel gets the extra row and column at the bottom and right, as in PyTorch.
    init : str
        Weight initialiser, "he" by default (see ``barenet.init``); biases start at zero.
    rng : Generator, int or None
    dtype : numpy dtype

    ``weight`` has shape ``(out_channels, in_channels, kh, kw)`` and ``bias``
    ``(out_channels,)``, like ``torch.nn.Conv2d``. Output height is
    ``(H + pad_top + pad_bottom - kh) // stride + 1``, and likewise the width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | str = 0,
        *,
        init: str = "he",
        rng: initialisers.RngLike = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = check_int("stride", stride)
        kh, kw = self.kernel_size
        if padding == "same":
            if self.stride != 1:
                raise ArgumentError(f"padding='same' needs stride=1, got stride={stride!r}")
            self._pads = ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)
        elif isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
            if padding < 0:
                raise ArgumentError(f"padding must be >= 0 or 'same', got {padding!r}")
            self._pads = (int(padding),) * 4
        else:
            raise ArgumentError(f"padding must be an int >= 0 or 'same', got {padding!r}")
        self.padding: int | str = padding if padding == "same" else int(padding)
        self.init = init
        self._initialiser = initialisers.get(init)
        self.dtype = check_float_dtype("dtype", dtype)
        self._cols: np.ndarray | None = None
        self._in_shape: tuple[int, ...] = ()
        self._out: tuple[int, int] = (0, 0)
        self.reset_parameters(rng)

    def reset_parameters(self, rng: initialisers.RngLike = None) -> None:
        """Draw new weights (zero biases) from ``rng``."""
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.params = {
            "weight": self._initialiser(shape, initialisers.as_rng(rng), self.dtype),
            "bias": np.zeros(self.out_channels, dtype=self.dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _geometry(self, h: int, w: int) -> tuple[int, int]:
        top, bottom, left, right = self._pads
        ho = out_size(h + top + bottom, self.kernel_size[0], self.stride)
        wo = out_size(w + left + right, self.kernel_size[1], self.stride)
        if ho < 1 or wo < 1:
            raise ArgumentError(
                f"{self!r} needs images of at least {self.kernel_size} after padding, got {(h, w)}"
            )
        return ho, wo

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._in_shape = x.shape
        xb = batch_last(as_images(self, x, self.in_channels))
        c, h, w, n = xb.shape
        ho, wo = self._out = self._geometry(h, w)
        kh, kw = self.kernel_size
        # (C, kh, kw, Ho, Wo, N): row index (c, i, j) matches weight.reshape(O, K).
        cols = np.empty((c, kh, kw, ho, wo, n), dtype=x.dtype)
        parallel.split(
            _im2col, c, xb, cols, self.kernel_size, self.stride, self._pads, values=cols.size
        )
        self._cols = matrix = cols.reshape(-1, ho * wo * n)
        weight = self.params["weight"].reshape(self.out_channels, -1)
        bias = self.params["bias"][:, None]
        y = np.empty((self.out_channels, ho * wo * n), dtype=np.result_type(weight, cols))
        parallel.split(
            _affine, y.shape[1], weight, matrix, bias, y, multiply_adds=weight.size * y.shape[1]
        )
        return batch_first(y.reshape(self.out_channels, ho, wo, n))

    def param_backward(self, dy: np.ndarray) -> None:
        """Only ``dW`` and ``db`` (a first layer's input gradient is never used)."""
        self._param_grads(dy)

    def _param_grads(self, dy: np.ndarray) -> np.ndarray:
        """Write ``dW = dy @ cols.T`` and ``db`` into ``grads``; return ``dy`` as (O, P)."""
        if self._cols is None:
            raise StateError("Conv2D.backward called before forward")
        o = self.out_channels
        dyc = batch_last(dy).reshape(o, -1)
        dw = self.grads["weight"].reshape(o, -1)
        if len(self._cols) >= _SPLIT_ROWS:
            parallel.matmul(dyc, self._cols.T, out=dw)
        else:  # a few long rows: one call reads dy once, split by columns it reads it twice
            np.matmul(dyc, self._cols.T, out=dw)
        # A matrix-vector product is a faster row sum than np.sum over the long rows.
        np.matmul(dyc, ones_vector(dyc.shape[1], dyc.dtype), out=self.grads["bias"])
        return dyc

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dcols = W.T @ dy``, then col2im onto the batch-last input."""
        dyc = self._param_grads(dy)
        o, (ho, wo), (kh, kw) = self.out_channels, self._out, self.kernel_size
        n, h, w = self._in_shape[0], *self._in_shape[-2:]
        dcols = parallel.matmul(self.params["weight"].reshape(o, -1).T, dyc)
        dcols = dcols.reshape(self.in_channels, kh, kw, ho, wo, n)
        dx = np.zeros((self.in_channels, h, w, n), dtype=dcols.dtype)
        pads = (self._pads[0], self._pads[2])
        parallel.split(_col2im_part, len(dx), dcols, dx, self.stride, pads, values=dcols.size)
        return batch_first(dx).reshape(self._in_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        ho, wo = self._geometry(*input_shape[-2:])
        return (self.out_channels, ho, wo)

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        out = check_int("out_channels", config.get("out_channels"))
        kernel = pair("kernel_size", config.get("kernel_size"))
        weight = (out, check_int("in_channels", config.get("in_channels")), *kernel)
        return {"param/weight": weight, "param/bias": (out,)}

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": self.stride,
            "padding": self.padding,
            "init": self.init,
        }
        if self.dtype != np.float32:
            config["dtype"] = self.dtype.name
        return config
