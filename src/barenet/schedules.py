"""Learning-rate schedules: callables ``schedule(step) -> lr`` over optimizer steps.

Pass one as an optimizer's ``lr`` (``Adam(lr=CosineDecay(1e-3, total_steps=9000))``); the
optimizer evaluates it at every step. ``step`` counts optimizer updates from 0.
"""

from __future__ import annotations

import math
from typing import Any

from barenet.errors import ArgumentError, check_int, check_positive

__all__ = [
    "CosineDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "Schedule",
    "StepDecay",
    "WarmUp",
    "from_config",
]


class Schedule:
    """Base class: subclasses implement ``__call__(step) -> lr`` and ``get_config``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class InverseTimeDecay(Schedule):
    """``lr / (1 + decay * step)``: the classic decay (also every optimizer's ``decay=``)."""

    def __init__(self, lr: float, decay: float) -> None:
        check_positive("lr", lr)
        check_positive("decay", decay, allow_zero=True)
        self.lr, self.decay = float(lr), float(decay)

    def __call__(self, step: int) -> float:
        return self.lr / (1.0 + self.decay * step)

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "decay": self.decay}


class StepDecay(Schedule):
    """``lr * gamma ** (step // step_size)``: drop by ``gamma`` every ``step_size`` steps."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        check_positive("lr", lr)
        self.step_size = check_int("step_size", step_size)
        check_positive("gamma", gamma)
        self.lr, self.gamma = float(lr), float(gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}


class ExponentialDecay(Schedule):
    """``lr * gamma ** step``."""

    def __init__(self, lr: float, gamma: float) -> None:
        check_positive("lr", lr)
        check_positive("gamma", gamma)
        self.lr, self.gamma = float(lr), float(gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma**step

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "gamma": self.gamma}


class CosineDecay(Schedule):
    """``min_lr + (lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2``, then ``min_lr``."""

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0) -> None:
        check_positive("lr", lr)
        self.total_steps = check_int("total_steps", total_steps)
        check_positive("min_lr", min_lr, allow_zero=True)
        self.lr, self.min_lr = float(lr), float(min_lr)

    def __call__(self, step: int) -> float:
        t = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "total_steps": self.total_steps, "min_lr": self.min_lr}


class WarmUp(Schedule):
    """Linear warm-up from ``lr / warmup_steps`` to the target over ``warmup_steps`` steps,
    then ``after`` (a float or another schedule, evaluated at ``step - warmup_steps``)."""

    def __init__(self, after: float | Schedule, warmup_steps: int) -> None:
        if not isinstance(after, Schedule):
            check_positive("after", after)
        self.after, self.warmup_steps = after, check_int("warmup_steps", warmup_steps)

    def _target(self, step: int) -> float:
        return self.after(step) if isinstance(self.after, Schedule) else float(self.after)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self._target(0) * (step + 1) / self.warmup_steps
        return self._target(step - self.warmup_steps)

    def get_config(self) -> dict[str, Any]:
        after = self.after
        return {
            "after": to_config(after) if isinstance(after, Schedule) else after,
            "warmup_steps": self.warmup_steps,
        }


_SCHEDULES = {
    c.__name__: c for c in (InverseTimeDecay, StepDecay, ExponentialDecay, CosineDecay, WarmUp)
}


def to_config(schedule: Schedule) -> dict[str, Any]:
    """``{"class": name, "config": {...}}``, JSON-serialisable."""
    return {"class": type(schedule).__name__, "config": schedule.get_config()}


def from_config(config: dict[str, Any]) -> Schedule:
    """Rebuild a schedule saved by ``to_config``."""
    cls = _SCHEDULES.get(config.get("class", ""))
    if cls is None:
        raise ArgumentError(f"unknown schedule {config.get('class')!r}")
    kwargs = dict(config.get("config", {}))
    if isinstance(kwargs.get("after"), dict):
        kwargs["after"] = from_config(kwargs["after"])
    return cls(**kwargs)
