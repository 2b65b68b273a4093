"""Optimizers. The base class owns the step count, the learning rate (a number or a
schedule), the classic decay ``lr / (1 + decay * t)`` and the state; each subclass writes
only its update rule, in place, over the arrays it is given.

A ``Sequential`` model hands over one contiguous parameter buffer and one gradient buffer,
so an update is a few vector operations however many layers there are.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from barenet import parallel
from barenet.errors import ArgumentError, check_positive, check_range
from barenet.schedules import Schedule, from_config, to_config

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "get"]

Array = np.ndarray

# Moments below this are flushed to zero every FLUSH_EVERY steps. Left alone, moments of
# parameters whose gradient is zero (dead ReLU units) decay into subnormal floats, which
# the CPU handles tens of times slower than normal ones; at 1e-30 they are far below
# anything that moves a weight (sqrt(1e-30) = 1e-15 << eps).
TINY = 1e-30
FLUSH_EVERY = 100


def _keras_learning_rate(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` taking ``learning_rate=`` as another name for ``lr``."""

    @functools.wraps(init)
    def accepting(self: Optimizer, *args: Any, learning_rate: Any = None, **kwargs: Any) -> None:
        if learning_rate is not None:
            if args or "lr" in kwargs:
                raise ArgumentError("give lr or learning_rate (its Keras name), not both")
            kwargs["lr"] = learning_rate
        init(self, *args, **kwargs)

    return accepting


class Optimizer:
    """Base class.

    Parameters
    ----------
    lr : float or Schedule
        Learning rate, or a schedule evaluated at every step.
    decay : float
        Classic decay: the rate used at step ``t`` is ``lr(t) / (1 + decay * t)``.
    """

    #: names of the per-parameter state arrays a subclass keeps
    slots: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Let every optimizer take ``learning_rate=``, the Keras name of ``lr``."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _keras_learning_rate(init)  # type: ignore[method-assign]

    def __init__(self, lr: float | Schedule, decay: float = 0.0) -> None:
        if not isinstance(lr, Schedule):
            check_positive("lr", lr)
        check_positive("decay", decay, allow_zero=True)
        self.lr: float | Schedule = lr if isinstance(lr, Schedule) else float(lr)
        self.decay = float(decay)
        self.iterations = 0
        self.state: list[dict[str, np.ndarray]] = []
        self._scratch: list[np.ndarray] = []

    @property
    def current_lr(self) -> float:
        """The learning rate the next step uses."""
        t = self.iterations
        base = self.lr(t) if isinstance(self.lr, Schedule) else self.lr
        return base / (1.0 + self.decay * t)

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Update every array in ``params`` in place from the matching array in ``grads``."""
        if len(params) != len(grads) or any(
            p.shape != g.shape for p, g in zip(params, grads, strict=False)
        ):
            raise ArgumentError("params and grads must be matching lists of arrays")
        if not self.state:
            self.state = [{s: np.zeros_like(p) for s in self.slots} for p in params]
        if len(self.state) != len(params) or any(
            a.shape != p.shape
            for st, p in zip(self.state, params, strict=True)
            for a in st.values()
        ):
            raise ArgumentError("params changed shape since this optimizer's first step")
        if len(self._scratch) != len(params):
            self._scratch = [np.empty_like(p) for p in params]
        lr = float(self.current_lr)  # a NumPy float64 would make float32 work run in float64
        self.iterations += 1
        for p, g, st, tmp in zip(params, grads, self.state, self._scratch, strict=True):
            if p.ndim == 0:
                self.update(p, g, st, tmp, lr)
            else:  # every rule is element-wise: a large buffer may be updated in parts
                parallel.split(self._update_part, len(p), p, g, st, tmp, lr, values=p.size)
        if self.iterations % FLUSH_EVERY == 0:
            for st in self.state:
                for a in st.values():
                    np.copyto(a, 0, where=np.abs(a) < TINY)

    def _update_part(
        self, s: slice, p: Array, g: Array, state: dict[str, Array], tmp: Array, lr: float
    ) -> None:
        self.update(p[s], g[s], {k: a[s] for k, a in state.items()}, tmp[s], lr)

    def update(self, p: Array, g: Array, state: dict[str, Array], tmp: Array, lr: float) -> None:
        """Apply one update to ``p`` in place; ``tmp`` is a scratch array shaped like ``p``.
        Rules must be element-wise: ``step`` may call this on parts of a large buffer."""
        raise NotImplementedError

    # ---- configuration and state, for model files and checkpoints -----------------------
    def get_config(self) -> dict[str, Any]:
        lr = to_config(self.lr) if isinstance(self.lr, Schedule) else self.lr
        return {"lr": lr, "decay": self.decay}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Step count and state arrays, as named arrays (saved in checkpoints)."""
        arrays = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for i, st in enumerate(self.state):
            for name, a in st.items():
                arrays[f"{i}.{name}"] = a
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` returned, so training resumes exactly."""
        self.iterations = int(arrays["iterations"])
        count = len({k.split(".")[0] for k in arrays if k != "iterations"})
        self.state = [{s: np.array(arrays[f"{i}.{s}"]) for s in self.slots} for i in range(count)]

    def snapshot(self) -> dict[str, Any]:
        """A copy of everything ``step`` and the callbacks change (step count, learning
        rate, state arrays), for ``restore``: ``fit`` rolls back to it when the loss turns
        NaN, so a retry starts from the moments and schedule position of a sound epoch."""
        return {
            "iterations": self.iterations,
            "lr": self.lr,
            "state": [{k: a.copy() for k, a in st.items()} for st in self.state],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Go back to what ``snapshot`` copied (the snapshot stays usable)."""
        self.iterations = snapshot["iterations"]
        self.lr = snapshot["lr"]
        self.state = [{k: a.copy() for k, a in st.items()} for st in snapshot["state"]]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's momentum convention::

    g = g + weight_decay * p
    v = momentum * v + g
    p -= lr * (g + momentum * v if nesterov else v)      # v = g when momentum = 0
    """

    slots: tuple[str, ...] = ("velocity",)

    def __init__(
        self,
        lr: float | Schedule = 0.01,
        momentum: float = 0.0,
        *,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        decay: float = 0.0,
    ) -> None:
        super().__init__(lr, decay)
        check_range("momentum", momentum, "[0, 1)")
        check_positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and momentum == 0:
            raise ArgumentError("nesterov=True needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)
        if momentum == 0:
            self.slots = ()

    def update(self, p: Array, g: Array, state: dict[str, Array], tmp: Array, lr: float) -> None:
        if self.weight_decay:
            g = np.add(g, self.weight_decay * p, out=tmp)
        if self.momentum:
            v = state["velocity"]
            v *= self.momentum
            v += g
            if self.nesterov:
                g = np.add(g, self.momentum * v, out=tmp)
            else:
                g = v
        p -= np.multiply(g, lr, out=tmp)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class Adagrad(Optimizer):
    """Adagrad: ``s += g**2; p -= lr * g / (sqrt(s) + eps)``."""

    slots = ("sum",)

    def __init__(self, lr: float | Schedule = 0.01, *, eps: float = 1e-10, decay: float = 0.0):
        super().__init__(lr, decay)
        check_positive("eps", eps)
        self.eps = float(eps)

    def update(self, p: Array, g: Array, state: dict[str, Array], tmp: Array, lr: float) -> None:
        s = state["sum"]
        s += np.square(g, out=tmp)
        np.sqrt(s, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "eps": self.eps}


class RMSprop(Optimizer):
    """RMSprop: ``v = alpha * v + (1 - alpha) * g**2; p -= lr * g / (sqrt(v) + eps)``."""

    slots = ("square_avg",)

    def __init__(
        self,
        lr: float | Schedule = 0.001,
        *,
        alpha: float = 0.99,
        eps: float = 1e-8,
        decay: float = 0.0,
    ) -> None:
        super().__init__(lr, decay)
        check_range("alpha", alpha, "[0, 1)")
        check_positive("eps", eps)
        self.alpha, self.eps = float(alpha), float(eps)

    def update(self, p: Array, g: Array, state: dict[str, Array], tmp: Array, lr: float) -> None:
        v = state["square_avg"]
        v *= self.alpha
        np.square(g, out=tmp)
        tmp *= 1 - self.alpha
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "eps": self.eps}


class Adam(Optimizer):
    """Adam, with bias correction as in PyTorch::

        g = g + weight_decay * p                    # L2 penalty (AdamW decouples it)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)

    To touch memory fewer times per step, the state holds ``M = m / (1 - b1)`` and
    ``V = v / (1 - b2)``, which update as ``M = b1 * M + g`` and ``V = b2 * V + g**2``; the
    constants move into two scalars. Ten passes over the parameters instead of thirteen.
    """

    slots = ("m_scaled", "v_scaled")
    decoupled = False

    def __init__(
        self,
        lr: float | Schedule = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decay: float = 0.0,
    ) -> None:
        super().__init__(lr, decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ArgumentError(f"betas must be a pair (b1, b2), got {betas!r}")
        check_range("betas[0]", betas[0], "[0, 1)")
        check_range("betas[1]", betas[1], "[0, 1)")
        check_positive("eps", eps)
        check_positive("weight_decay", weight_decay, allow_zero=True)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def update(self, p: Array, g: Array, state: dict[str, Array], tmp: Array, lr: float) -> None:
        b1, b2 = self.betas
        t = self.iterations
        if self.weight_decay and self.decoupled:
            p *= 1 - lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m, v = state["m_scaled"], state["v_scaled"]
        m *= b1
        m += g
        np.multiply(g, g, out=tmp)
        v *= b2
        v += tmp
        # sqrt(v_hat) = s * sqrt(V) with s = sqrt((1 - b2) / (1 - b2**t))
        s = math.sqrt((1 - b2) / (1 - b2**t))
        np.sqrt(v, out=tmp)
        tmp += self.eps / s
        np.divide(m, tmp, out=tmp)
        tmp *= lr * (1 - b1) / ((1 - b1**t) * s)
        p -= tmp

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam step."""

    decoupled = True

    def __init__(
        self,
        lr: float | Schedule = 0.001,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        decay: float = 0.0,
    ) -> None:
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay, decay=decay)


_REGISTRY: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
}


def get(name: str | Optimizer, **kwargs: Any) -> Optimizer:
    """An optimizer by name ("sgd", "adagrad", "rmsprop", "adam", "adamw") or as given."""
    if isinstance(name, Optimizer):
        return name
    cls = _REGISTRY.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise ArgumentError(f"optimizer must be one of {', '.join(_REGISTRY)}; got {name!r}")
    if isinstance(kwargs.get("lr"), dict):
        kwargs["lr"] = from_config(kwargs["lr"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return cls(**kwargs)
