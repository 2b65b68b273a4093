"""Batch normalisation for dense features (N, C) and images (N, C, H, W)."""

from __future__ import annotations

from typing import Any

import numpy as np

from barenet import parallel
from barenet.errors import (
    ArgumentError,
    StateError,
    check_float_dtype,
    check_int,
    check_positive,
    check_range,
)
from barenet.layers import Layer, ones_vector

__all__ = ["BatchNorm"]


class BatchNorm(Layer):
    """Normalise each feature (channel) over the batch, then scale and shift it.

    In training, with the mean ``m`` and variance ``v`` of each feature over the batch
    (and, for images, over height and width)::

        x_hat = (x - m) / sqrt(v + eps)        y = weight * x_hat + bias

    and the running statistics move towards the batch's:
    ``running = (1 - momentum) * running + momentum * batch`` (the variance unbiased, as
    in PyTorch). At inference the running statistics replace the batch's, so a sample's
    output does not depend on the rest of its batch. The running statistics are saved
    with the model (``state()``).

    Backward (training), over the ``M`` values of a feature:
    ``dx = weight / sqrt(v + eps) * (dy - mean(dy) - x_hat * mean(dy * x_hat))``,
    ``dweight = sum(dy * x_hat)``, ``dbias = sum(dy)``.

    Parameters
    ----------
    num_features : int
        ``C``: the width of dense input or the channels of images.
    momentum : float
        Weight of the newest batch in the running statistics, in (0, 1].
    eps : float
        Added to the variance so the division is safe.
    dtype : numpy dtype
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.1,
        eps: float = 1e-5,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.num_features = check_int("num_features", num_features)
        self.momentum = check_range("momentum", momentum, "(0, 1]")
        check_positive("eps", eps)
        self.eps = float(eps)
        self.dtype = check_float_dtype("dtype", dtype)
        self.running_mean = np.zeros(self.num_features, dtype=self.dtype)
        self.running_var = np.ones(self.num_features, dtype=self.dtype)
        self._cache: tuple[np.ndarray, np.ndarray, bool] | None = None
        self.reset_parameters()

    def reset_parameters(self, rng: Any = None) -> None:
        """Scale 1, shift 0, running mean 0 and variance 1 (nothing random)."""
        self.params = {
            "weight": np.ones(self.num_features, dtype=self.dtype),
            "bias": np.zeros(self.num_features, dtype=self.dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.running_mean[...] = 0
        self.running_var[...] = 1

    def _rows(self, x: np.ndarray) -> np.ndarray:
        """``x`` as (C, M): one row per feature. A view for the batch-last arrays that
        barenet's image layers produce, and for the transpose of dense (N, C) input."""
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ArgumentError(
                f"{self!r} expects input of shape (N, {self.num_features}) or "
                f"(N, {self.num_features}, H, W), got {x.shape}"
            )
        return x.T if x.ndim == 2 else x.transpose(1, 2, 3, 0).reshape(self.num_features, -1)

    def _unrows(self, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Inverse of ``_rows``: (C, M) back to ``shape`` (a view)."""
        if len(shape) == 2:
            return rows.T
        n, c, h, w = shape
        return rows.reshape(c, h, w, n).transpose(3, 0, 1, 2)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        rows = self._rows(x)
        count = rows.shape[1]
        if training and count < 2:
            raise ArgumentError(
                f"BatchNorm needs more than one value per feature in training, got input {x.shape}"
            )
        y = np.empty(rows.shape, dtype=x.dtype)
        # Training keeps x - mean for backward; inference keeps a reference to the input.
        centred = np.empty(rows.shape, dtype=x.dtype) if training else rows
        stats = mean, var, inv_std = tuple(np.empty(self.num_features, x.dtype) for _ in range(3))
        parallel.split(
            self._normalise, self.num_features, rows, centred, y, stats, training, values=rows.size
        )
        if training:
            m = x.dtype.type(self.momentum)
            self.running_mean *= 1 - m
            self.running_mean += m * mean
            self.running_var *= 1 - m
            self.running_var += (m * count / (count - 1)) * var
        self._cache = (centred, inv_std, training)
        return self._unrows(y, x.shape)

    def _normalise(
        self,
        s: slice,
        rows: np.ndarray,
        centred: np.ndarray,
        y: np.ndarray,
        stats: tuple[np.ndarray, ...],
        training: bool,
    ) -> None:
        """Forward for the features ``s``: write ``y``, the batch's (or the running)
        ``mean``, ``var`` and ``inv_std`` (``stats``) and, in training, ``x - mean`` into
        ``centred``. Row sums and sums of squares are matrix-vector products: BLAS does
        them three times faster than np.sum and np.einsum."""
        mean, var, inv_std = stats
        dtype = rows.dtype.type
        weight, bias = self.params["weight"][s], self.params["bias"][s]
        if training:
            count = dtype(rows.shape[1])
            np.matmul(rows[s], ones_vector(rows.shape[1], rows.dtype), out=mean[s])
            mean[s] /= count
            np.subtract(rows[s], mean[s, None], out=centred[s])
            var[s] = _row_dots(centred[s], centred[s]) / count
            inv_std[s] = 1 / np.sqrt(var[s] + dtype(self.eps))
            np.multiply(centred[s], (weight * inv_std[s])[:, None], out=y[s])
        else:
            np.subtract(rows[s], self.running_mean[s, None], out=y[s])
            var[s] = self.running_var[s]
            inv_std[s] = 1 / np.sqrt(var[s] + dtype(self.eps))
            y[s] *= inv_std[s, None]
            y[s] *= weight[:, None]
        y[s] += bias[:, None]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise StateError("BatchNorm.backward called before forward")
        rows = self._rows(dy)
        dx = np.empty(rows.shape, dtype=dy.dtype)
        parallel.split(self._gradient, self.num_features, rows, dx, *self._cache, values=rows.size)
        return self._unrows(dx, dy.shape)

    def _gradient(
        self,
        s: slice,
        rows: np.ndarray,
        dx: np.ndarray,
        centred: np.ndarray,
        inv_std: np.ndarray,
        training: bool,
    ) -> None:
        """Backward for the features ``s``: ``dx`` from the output gradient ``rows``, and
        the parameter gradients. ``x_hat = centred * inv_std``; in inference ``centred``
        is the input, and the running mean is taken off the sums."""
        dtype = rows.dtype.type
        count = dtype(rows.shape[1])
        dweight, dbias = self.grads["weight"], self.grads["bias"]
        np.matmul(rows[s], ones_vector(rows.shape[1], rows.dtype), out=dbias[s])
        sums = _row_dots(rows[s], centred[s])  # sum(dy * centred)
        if not training:
            sums -= self.running_mean[s] * dbias[s]
        dweight[s] = sums * inv_std[s]
        scale = self.params["weight"][s] * inv_std[s]
        np.multiply(rows[s], scale[:, None], out=dx[s])
        if training:
            # dx = scale * (dy - mean(dy) - x_hat * mean(dy * x_hat))
            dx[s] -= centred[s] * (scale * dweight[s] * inv_std[s] / count)[:, None]
            dx[s] -= (scale * dbias[s] / count)[:, None]

    def state(self) -> dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    @classmethod
    def array_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n = (check_int("num_features", config.get("num_features")),)
        names = ("param/weight", "param/bias", "state/running_mean", "state/running_var")
        return dict.fromkeys(names, n)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"num_features": self.num_features}
        if self.momentum != 0.1:
            config["momentum"] = self.momentum
        if self.eps != 1e-5:
            config["eps"] = self.eps
        if self.dtype != np.float32:
            config["dtype"] = self.dtype.name
        return config


def _row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum(a * b, axis=1)`` for 2-D arrays: one BLAS dot per row."""
    return np.matmul(a[:, None, :], b[:, :, None])[:, 0, 0]
