"""The reference-solution expert: reveals the problem's solution one step at a time."""

from __future__ import annotations

import re
from collections.abc import Sequence

from eapo_gym.experts.base import BaseExpert, ExpertQuery
from eapo_gym.protocol import EXHAUSTED_REPLY

_NUMBER = re.compile(r"-?\d+")


class ReferenceExpert(BaseExpert):
    """Answers each query with the next unrevealed solution step.

    The query text is ignored: this is the oracle analogue of a stronger model
    that knows how to proceed. A problem without steps reveals its hints; with
    ``hints_first=True`` the hints come before the steps. ``noise`` is the
    probability that a reply is corrupted (its last number shifted), for
    experiments with unreliable experts. Parallel queries in one turn reveal
    successive steps.
    """

    def __init__(self, noise: float = 0.0, hints_first: bool = False, name: str = "reference") -> None:
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must lie in [0, 1], got {noise}")
        self.noise = noise
        self.hints_first = hints_first
        self.name = name

    def consult(self, queries: Sequence[ExpertQuery]) -> list[str]:
        return [self._next_step(query) for query in queries]

    def _next_step(self, query: ExpertQuery) -> str:
        steps, hints = query.problem.solution_steps, query.problem.hints
        items = (*hints, *steps) if self.hints_first else steps or hints
        revealed = query.memory.get("revealed", 0)
        if revealed >= len(items):
            return EXHAUSTED_REPLY
        query.memory["revealed"] = revealed + 1
        step = items[revealed]
        if self.noise and query.rng.random() < self.noise:
            step = corrupt_last_number(step, query.rng)
        return step


def corrupt_last_number(text: str, rng) -> str:
    """Shift the last integer in ``text`` by a nonzero amount (a plausible wrong step)."""
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return text
    last = matches[-1]
    shift = int(rng.choice([-3, -2, -1, 1, 2, 3]))
    return text[: last.start()] + str(int(last.group()) + shift) + text[last.end() :]
