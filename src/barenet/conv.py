"""Image layers: Conv2D, MaxPool2D, AvgPool2D and GlobalAvgPool2D.

Images are NCHW at the API, as in PyTorch: ``(batch, channels, height, width)``. The
pooling layers, and a Conv2D whose ``in_channels`` is 1, also take ``(N, H, W)`` batches
(MNIST as loaded) as one channel; the input gradient has the shape of the input.

Inside, each layer works on the *batch-last* view ``x.transpose(1, 2, 3, 0)``, shape
(C, H, W, N), and returns its result as the NCHW view of a batch-last array. Views cost
nothing, and consecutive image layers then move memory in long runs: a window offset, a
row of pixels and the whole batch behind each pixel are one contiguous stretch, so the
im2col copy, col2im and pooling never step through memory one value at a time, and a
convolution's matrix product reads and writes its operands as they lie.

Convolution is im2col + one matrix product: every ``kh x kw`` window of the padded input
becomes a column (``sliding_window_view`` makes the windows without copying), so with
``K = C * kh * kw`` and ``P = H_out * W_out * N``::

    cols : (K, P)          y = W.reshape(O, K) @ cols + b

and backward is ``dW = dy @ cols.T``, ``dcols = W.T @ dy``, then col2im adds each
window's gradient back onto the pixels it was read from (``kh * kw`` strided additions,
the padding cropped off by clipping each one to the image).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from barenet import init as initialisers
from barenet import parallel
from barenet.errors import ArgumentError, check_float_dtype, check_int
from barenet.layers import Layer

__all__ = ["AvgPool2D", "Conv2D", "GlobalAvgPool2D", "MaxPool2D"]


def _pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints, as ``(height, width)``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
        return check_int(name, value[0]), check_int(name, value[1])
    n = check_int(name, value)
    return n, n


def _out_size(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def _as_images(layer: Layer, x: np.ndarray, channels: int | None) -> np.ndarray:
    """``x`` as (N, C, H, W); (N, H, W) is taken as one channel when ``channels`` is 1."""
    if x.ndim == 3 and channels in (1, None):
        return x[:, None]
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = "(N, C, H, W)" if channels is None else f"(N, {channels}, H, W)"
        if channels == 1:
            want += " or (N, H, W)"
        raise ArgumentError(f"{layer!r} expects input of shape {want}, got {x.shape}")
    return x


def _batch_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) as its (C, H, W, N) view."""
    return x.transpose(1, 2, 3, 0)


def _batch_first(a: np.ndarray) -> np.ndarray:
    """A batch-last (C, H, W, N) array as its NCHW view."""
    return a.transpose(3, 0, 1, 2)


def _windows(xb: np.ndarray, kernel: tuple[int, int], stride: int, out: tuple[int, int]):
    """All windows of batch-last ``xb`` (C, H, W, N) as a view (C, Ho, Wo, N, kh, kw)."""
    w = sliding_window_view(xb, kernel, axis=(1, 2))
    return w[:, : stride * (out[0] - 1) + 1 : stride, : stride * (out[1] - 1) + 1 : stride]


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
    windows = _windows(image, kernel, stride, cols.shape[3:5])
    np.copyto(cols[part], windows.transpose(0, 4, 5, 1, 2, 3))


def _affine(
    part: slice, weight: np.ndarray, cols: np.ndarray, bias: np.ndarray, y: np.ndarray
) -> None:
    """``y = weight @ cols + bias`` for the columns ``part``."""
    np.matmul(weight, cols[:, part], out=y[:, part])
    y[:, part] += bias


def _row_sums(part: slice, a: np.ndarray, out: np.ndarray) -> None:
    np.sum(a[part], axis=1, out=out[part])


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
        self.kernel_size = _pair("kernel_size", kernel_size)
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
        ho = _out_size(h + top + bottom, self.kernel_size[0], self.stride)
        wo = _out_size(w + left + right, self.kernel_size[1], self.stride)
        if ho < 1 or wo < 1:
            raise ArgumentError(
                f"{self!r} needs images of at least {self.kernel_size} after padding, got {(h, w)}"
            )
        return ho, wo

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._in_shape = x.shape
        xb = _batch_last(_as_images(self, x, self.in_channels))
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
        return _batch_first(y.reshape(self.out_channels, ho, wo, n))

    def param_backward(self, dy: np.ndarray) -> None:
        """Only ``dW`` and ``db`` (a first layer's input gradient is never used)."""
        self._param_grads(dy)

    def _param_grads(self, dy: np.ndarray) -> np.ndarray:
        """Write ``dW = dy @ cols.T`` and ``db`` into ``grads``; return ``dy`` as (O, P)."""
        if self._cols is None:
            raise RuntimeError("Conv2D.backward called before forward")
        o = self.out_channels
        dyc = _batch_last(dy).reshape(o, -1)
        parallel.matmul(dyc, self._cols.T, out=self.grads["weight"].reshape(o, -1))
        db = self.grads["bias"]
        parallel.split(_row_sums, o, dyc, db, values=dyc.size)
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
        return _batch_first(dx).reshape(self._in_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        ho, wo = self._geometry(*input_shape[-2:])
        return (self.out_channels, ho, wo)

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        out = check_int("out_channels", config.get("out_channels"))
        kernel = _pair("kernel_size", config.get("kernel_size"))
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


class _Pool2D(Layer):
    """Shared geometry of the window pooling layers (no padding; the remainder is dropped,
    as PyTorch does by default)."""

    def __init__(self, kernel_size: int | tuple[int, int] = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = _pair("kernel_size", kernel_size)
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
        ho, wo = _out_size(h, kh, sh), _out_size(w, kw, sw)
        if ho < 1 or wo < 1:
            raise ArgumentError(
                f"{self!r} needs images of at least {self.kernel_size}, got {(h, w)}"
            )
        return ho, wo

    def _window_view(self, x: np.ndarray) -> np.ndarray:
        """Batch-last windows (C, Ho, Wo, N, kh, kw) of ``x``: a view, no copy."""
        self._in_shape = x.shape
        xb = _batch_last(_as_images(self, x, None))
        ho, wo = self._out = self._geometry(*xb.shape[1:3])
        (kh, kw) = self.kernel_size
        if self._tiles:
            c, n = xb.shape[0], xb.shape[3]
            tiles = xb[:, : ho * kh, : wo * kw].reshape(c, ho, kh, wo, kw, n)
            return tiles.transpose(0, 1, 3, 5, 2, 4)
        return _windows(xb, self.kernel_size, self._steps()[0], (ho, wo))  # a square stride

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
        return _batch_first(dxb).reshape(self._in_shape)

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
        return _batch_first(y)

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
        return self._input_grad(_batch_last(_as_images(self, dy, None)))

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
        return _batch_first(y)

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
            _batch_last(_as_images(self, dy, None)) * dy.dtype.type(1.0 / (kh * kw))
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
