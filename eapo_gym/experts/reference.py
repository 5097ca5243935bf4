"""The reference-solution expert: reveals the problem's solution one step at a time."""

from __future__ import annotations

import re
from collections.abc import Sequence

from eapo_gym.experts.base import BaseExpert, ExpertQuery
from eapo_gym.protocol import EXHAUSTED_REPLY

_NUMBER = re.compile(r"-?\d+")


REVEAL_MODES = ("next", "successive")


class ReferenceExpert(BaseExpert):
    """The oracle analogue of a stronger model that knows how to proceed: it answers with a solution step.

    ``reveal="next"`` (default): the first solution step not yet in the episode's
    transcript (the policy's own work and earlier replies), so the K parallel
    queries of a turn get the same single step, a step the policy already wrote
    is never revealed again, and the rest of the work stays the policy's.
    ``reveal="successive"``: each query reveals the next step this expert has not
    revealed yet, so K parallel queries give away K steps (one turn can hand over
    a whole short solution). The query text is ignored either way. A problem
    without steps reveals its hints; with ``hints_first=True`` the hints come
    before the steps. ``noise`` is the probability that a reply is corrupted (its
    last number shifted), for experiments with unreliable experts.
    """

    def __init__(
        self, noise: float = 0.0, hints_first: bool = False, reveal: str = "next", name: str = "reference"
    ) -> None:
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must lie in [0, 1], got {noise}")
        if reveal not in REVEAL_MODES:
            raise ValueError(f"reveal must be one of {', '.join(REVEAL_MODES)}, got {reveal!r}")
        self.noise = noise
        self.hints_first = hints_first
        self.reveal = reveal
        self.name = name

    def consult(self, queries: Sequence[ExpertQuery]) -> list[str]:
        return [self._step(query) for query in queries]

    def _step(self, query: ExpertQuery) -> str:
        steps, hints = query.problem.solution_steps, query.problem.hints
        items = (*hints, *steps) if self.hints_first else steps or hints
        if self.reveal == "next":
            step = next((item for item in items if item not in query.context), None)
        else:
            revealed = query.memory.get("revealed", 0)
            step = items[revealed] if revealed < len(items) else None
            query.memory["revealed"] = revealed + 1
        if step is None:
            return EXHAUSTED_REPLY
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
