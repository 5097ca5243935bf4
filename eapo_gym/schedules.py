"""Training-step schedules: EAPO's acceptance rate rho_s and its shrinking turn budget.

EAPO anneals consultation by admitting each expert reply with probability
``rho_s = 1/s``, where ``s`` is the global training step. The paper leaves the
unit and offset of ``s`` open. Our convention: ``s`` counts policy updates and
starts at 1; ``s = 0`` means "before training" and every schedule gives its
start value there (1 for the inverse schedule). ``InverseSchedule(scale=k)``
stretches the unit: ``rho = min(1, k / s)``, so ``k = 1`` is the paper's literal
``1/s`` and ``k = 10`` keeps full acceptance for the first 10 updates.

The turn budget at step s is ``turn_budget(share(s), max_turns, final_turns)``, where
``share`` is a schedule from 1 to 0: the paper shrinks the budget toward the evaluation's.

A trainer computes both at each step and hands them to the environment at reset,
``env.reset(options={"acceptance": rho, "max_turns": budget})``; the environment keeps
no training step. Schedules are written as text (``parse_schedule``): ``constant:R``,
``inverse``, ``linear``, ``exponential[:D]``, ``cosine``; linear and cosine run over a
fixed ``length`` of updates (a run's ``schedule_steps``), then stay at their end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class Schedule(Protocol):
    """Maps a training step ``s >= 0`` to a value in [0, 1]."""

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


SCHEDULES = ("constant", "inverse", "linear", "exponential", "cosine")


def parse_schedule(text: str, length: int, scale: float = 1.0) -> Schedule:
    """``constant:0.5`` -> 0.5 always; ``inverse`` -> min(1, scale / s); ``exponential[:decay]``
    (decay in (0, 1], 0.95 by default); ``linear`` and ``cosine`` go from 1 to 0 over ``length`` updates.
    A ``ValueError`` names the choices or the allowed values."""
    name, _, value = text.partition(":")
    try:
        number = float(value) if value else None
    except ValueError:
        name = ""
    if name not in SCHEDULES or (number is not None and name not in ("constant", "exponential")):
        raise ValueError(
            f"a schedule is one of {', '.join(SCHEDULES)} (constant:R, exponential:D); got {text!r}"
        )
    if name == "constant":
        value = 1.0 if number is None else number
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a constant schedule lies in [0, 1]; got {text!r}")
        return ConstantSchedule(value)
    if name == "inverse":
        return InverseSchedule(scale)
    if name == "exponential":
        decay = 0.95 if number is None else number
        if not 0.0 < decay <= 1.0:
            raise ValueError(
                f"an exponential schedule's decay lies in (0, 1] (constant:0 never accepts); got {text!r}"
            )
        return ExponentialSchedule(decay=decay)
    if length < 1:
        raise ValueError(f"a {name} schedule needs a length of at least 1 update; got {length}")
    return (LinearSchedule if name == "linear" else CosineSchedule)(total_steps=length)


def turn_budget(share: float, max_turns: int, final_turns: int) -> int:
    """Turns an episode may take: ``final_turns`` plus ``share`` of the turns above it."""
    if not 1 <= final_turns <= max_turns:
        raise ValueError(f"need 1 <= final_turns <= max_turns, got {final_turns} and {max_turns}")
    return final_turns + round((max_turns - final_turns) * share)
