"""Acceptance-rate schedules rho(s): the probability that an expert reply is admitted.

EAPO anneals consultation by admitting each expert reply with probability
``rho_s = 1/s``, where ``s`` is the global training step. The paper leaves the
unit and offset of ``s`` open. Our convention: ``s`` counts policy updates and
starts at 1; ``s = 0`` means "before training" and every schedule gives its
start value there (1 for the inverse schedule). ``InverseSchedule(scale=k)``
stretches the unit: ``rho = min(1, k / s)``, so ``k = 1`` is the paper's literal
``1/s`` and ``k = 10`` keeps full acceptance for the first 10 updates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class AcceptanceSchedule(Protocol):
    """Maps a training step ``s >= 0`` to an acceptance probability in [0, 1]."""

    def __call__(self, step: int) -> float: ...


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _progress(step: int, total_steps: int) -> float:
    """Fraction of ``total_steps`` done at ``step``, in [0, 1]."""
    return min(1.0, max(0, step) / max(1, total_steps))


@dataclass(frozen=True)
class ConstantSchedule:
    """rho(s) = value."""

    value: float = 1.0

    def __call__(self, step: int) -> float:
        return _clip(self.value)


@dataclass(frozen=True)
class InverseSchedule:
    """rho(s) = max(floor, min(1, scale / s)); the paper's schedule is scale=1, floor=0."""

    scale: float = 1.0
    floor: float = 0.0

    def __call__(self, step: int) -> float:
        if step <= 0:
            return 1.0
        return _clip(max(self.floor, self.scale / step))


@dataclass(frozen=True)
class LinearSchedule:
    """rho(s) falls linearly from ``start`` to ``end`` over ``total_steps``, then stays at ``end``."""

    start: float = 1.0
    end: float = 0.0
    total_steps: int = 100

    def __call__(self, step: int) -> float:
        return _clip(self.start + (self.end - self.start) * _progress(step, self.total_steps))


@dataclass(frozen=True)
class ExponentialSchedule:
    """rho(s) = max(floor, start * decay**s)."""

    start: float = 1.0
    decay: float = 0.95
    floor: float = 0.0

    def __call__(self, step: int) -> float:
        return _clip(max(self.floor, self.start * self.decay ** max(0, step)))


@dataclass(frozen=True)
class CosineSchedule:
    """rho(s) follows half a cosine from ``start`` to ``end`` over ``total_steps``."""

    start: float = 1.0
    end: float = 0.0
    total_steps: int = 100

    def __call__(self, step: int) -> float:
        cosine = math.cos(math.pi * _progress(step, self.total_steps))
        return _clip(self.end + (self.start - self.end) * 0.5 * (1.0 + cosine))


SCHEDULES: dict[str, type] = {
    "constant": ConstantSchedule,
    "inverse": InverseSchedule,
    "linear": LinearSchedule,
    "exponential": ExponentialSchedule,
    "cosine": CosineSchedule,
}


def make_schedule(spec: float | str | Mapping[str, Any] | AcceptanceSchedule) -> AcceptanceSchedule:
    """Build a schedule from a number (constant), a name, ``{"type": name, **params}`` or a callable."""
    if isinstance(spec, bool):
        raise TypeError("acceptance must be a number in [0, 1], a schedule name, a dict or a callable")
    if isinstance(spec, int | float):
        if not 0.0 <= spec <= 1.0:
            raise ValueError(f"constant acceptance must lie in [0, 1], got {spec}")
        return ConstantSchedule(float(spec))
    if isinstance(spec, str):
        spec = {"type": spec}
    if isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("type", None)
        if name not in SCHEDULES:
            raise ValueError(f"unknown acceptance schedule {name!r}; choose one of {sorted(SCHEDULES)}")
        return SCHEDULES[name](**params)
    if callable(spec):
        return spec
    raise TypeError(f"cannot build an acceptance schedule from {spec!r}")
