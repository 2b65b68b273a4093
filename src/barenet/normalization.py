"""Batch normalisation for dense features (N, C) and images (N, C, H, W)."""

from __future__ import annotations

from typing import Any

import numpy as np

from barenet.errors import ArgumentError, check_positive, is_real
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
        if (
            not isinstance(num_features, (int, np.integer))
            or isinstance(num_features, bool)
            or num_features < 1
        ):
            raise ArgumentError(f"num_features must be a positive integer, got {num_features!r}")
        if not is_real(momentum) or not 0 < momentum <= 1:
            raise ArgumentError(f"momentum must be in (0, 1], got {momentum!r}")
        check_positive("eps", eps)
        self.num_features = int(num_features)
        self.momentum, self.eps = float(momentum), float(eps)
        self.dtype = np.dtype(dtype)
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
        if training:
            count = rows.shape[1]
            if count < 2:
                raise ArgumentError(
                    "BatchNorm needs more than one value per feature in training, "
                    f"got input {x.shape}"
                )
            mean = rows.mean(axis=1, dtype=x.dtype)
            x_hat = rows - mean[:, None]
            var = np.einsum("ij,ij->i", x_hat, x_hat) / x.dtype.type(count)
            m = x.dtype.type(self.momentum)
            self.running_mean *= 1 - m
            self.running_mean += m * mean
            self.running_var *= 1 - m
            self.running_var += (m * count / (count - 1)) * var
        else:
            x_hat = rows - self.running_mean[:, None]
            var = self.running_var
        inv_std = (1 / np.sqrt(var + x.dtype.type(self.eps))).astype(x.dtype, copy=False)
        x_hat *= inv_std[:, None]
        self._cache = (x_hat, inv_std, training)
        y = x_hat * self.params["weight"][:, None]
        y += self.params["bias"][:, None]
        return self._unrows(y, x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("BatchNorm.backward called before forward")
        x_hat, inv_std, training = self._cache
        rows = self._rows(dy)
        np.sum(rows, axis=1, out=self.grads["bias"])
        np.einsum("ij,ij->i", rows, x_hat, out=self.grads["weight"])
        scale = self.params["weight"] * inv_std
        dx = rows * scale[:, None]
        if training:
            count = dy.dtype.type(rows.shape[1])
            dx -= x_hat * (scale * self.grads["weight"] / count)[:, None]
            dx -= (scale * self.grads["bias"] / count)[:, None]
        return self._unrows(dx, dy.shape)

    def state(self) -> dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"num_features": self.num_features}
        if self.momentum != 0.1:
            config["momentum"] = self.momentum
        if self.eps != 1e-5:
            config["eps"] = self.eps
        if self.dtype != np.float32:
            config["dtype"] = self.dtype.name
        return config
