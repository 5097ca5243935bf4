"""The problem record and the problem-set interface every source implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One math problem.

    ``answer`` is the gold answer as a string (checked by ``eapo_gym.verify``).
    ``solution_steps`` and ``hints`` feed the reference-solution expert and SFT
    data; both may be empty for sources that have none.
    """

    id: str
    question: str
    answer: str
    solution_steps: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    difficulty: int | None = None
    source: str = ""
    kind: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class ProblemSet(Sequence[Problem]):
    """An indexable, reproducible collection of problems of one split.

    Subclasses implement ``__len__`` and ``_problem(index)``; lookup by id is
    ``get(problem_id)``.
    """

    name: str = "problems"

    def __len__(self) -> int:
        raise NotImplementedError

    def _problem(self, index: int) -> Problem:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Problem:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"problem index {index} out of range for {len(self)} problems")
        return self._problem(index % len(self))

    def __iter__(self) -> Iterator[Problem]:
        return (self[i] for i in range(len(self)))

    def get(self, problem_id: str) -> Problem:
        """The problem with this id; ``KeyError`` if the set has none."""
        for problem in self:
            if problem.id == problem_id:
                return problem
        raise KeyError(f"no problem with id {problem_id!r} in {self.name}")


class ListProblemSet(ProblemSet):
    """A problem set held in memory (files, CHAMP, a user's list of dicts)."""

    def __init__(self, problems: Sequence[Problem], name: str = "problems") -> None:
        if not problems:
            raise ValueError(f"problem set {name!r} is empty")
        self.name = name
        self._problems = list(problems)
        self._by_id = {p.id: p for p in self._problems}
        if len(self._by_id) != len(self._problems):
            raise ValueError(f"problem set {name!r} has duplicate problem ids")

    def __len__(self) -> int:
        return len(self._problems)

    def _problem(self, index: int) -> Problem:
        return self._problems[index]

    def get(self, problem_id: str) -> Problem:
        try:
            return self._by_id[problem_id]
        except KeyError:
            raise KeyError(f"no problem with id {problem_id!r} in {self.name}") from None
