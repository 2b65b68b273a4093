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
from barenet.layers import Layer

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
        x_hat, y = np.empty(rows.shape, dtype=x.dtype), np.empty(rows.shape, dtype=x.dtype)
        stats = mean, var, inv_std = tuple(np.empty(self.num_features, x.dtype) for _ in range(3))
        parallel.split(
            self._normalise, self.num_features, rows, x_hat, y, stats, training, values=rows.size
        )
        if training:
            m = x.dtype.type(self.momentum)
            self.running_mean *= 1 - m
            self.running_mean += m * mean
            self.running_var *= 1 - m
            self.running_var += (m * count / (count - 1)) * var
        self._cache = (x_hat, inv_std, training)
        return self._unrows(y, x.shape)

    def _normalise(
        self,
        s: slice,
        rows: np.ndarray,
        x_hat: np.ndarray,
        y: np.ndarray,
        stats: tuple[np.ndarray, ...],
        training: bool,
    ) -> None:
        """Forward for the features ``s``: write ``x_hat``, ``y`` and the batch's (or the
        running) ``mean``, ``var`` and ``inv_std`` (``stats``)."""
        mean, var, inv_std = stats
        dtype = rows.dtype.type
        if training:
            mean[s] = rows[s].mean(axis=1, dtype=rows.dtype)
            np.subtract(rows[s], mean[s, None], out=x_hat[s])
            var[s] = np.einsum("ij,ij->i", x_hat[s], x_hat[s]) / dtype(rows.shape[1])
        else:
            np.subtract(rows[s], self.running_mean[s, None], out=x_hat[s])
            var[s] = self.running_var[s]
        inv_std[s] = 1 / np.sqrt(var[s] + dtype(self.eps))
        x_hat[s] *= inv_std[s, None]
        np.multiply(x_hat[s], self.params["weight"][s, None], out=y[s])
        y[s] += self.params["bias"][s, None]

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
        x_hat: np.ndarray,
        inv_std: np.ndarray,
        training: bool,
    ) -> None:
        """Backward for the features ``s``: ``dx`` from the output gradient ``rows``, and
        the parameter gradients."""
        count = rows.dtype.type(rows.shape[1])
        dweight, dbias = self.grads["weight"], self.grads["bias"]
        np.sum(rows[s], axis=1, out=dbias[s])
        np.einsum("ij,ij->i", rows[s], x_hat[s], out=dweight[s])
        scale = self.params["weight"][s] * inv_std[s]
        np.multiply(rows[s], scale[:, None], out=dx[s])
        if training:
            dx[s] -= x_hat[s] * (scale * dweight[s] / count)[:, None]
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
