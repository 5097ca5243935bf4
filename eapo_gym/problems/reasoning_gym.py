"""Problems from a `reasoning-gym <https://github.com/open-thought/reasoning-gym>`_ dataset
(optional dependency, imported only when used): ``reasoning_gym:<name>``.

Item ``i`` of a split is the first of dataset entries ``i*ATTEMPTS, i*ATTEMPTS+1, ...`` whose
question hashes to that split, so train and test never share a question. reasoning-gym gives
no solution steps, so ``solution_steps`` is empty.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Problem, ProblemSet
from .splits import draw_in_split

ATTEMPTS = 256
DEFAULT_SIZE = {"train": 1_000, "test": 100}
PREFIX = "reasoning_gym:"
_ID = re.compile(r"reasoning_gym/(?P<name>[^/]+)/(?P<split>[a-z]+)/(?P<index>\d+)(?:/s(?P<seed>-?\d+))?")


def _create_dataset(name: str, **kwargs: Any) -> Any:
    try:
        import reasoning_gym
    except ImportError as error:
        raise ImportError(
            f"problems {PREFIX}{name} need the optional reasoning-gym package: "
            "pip install 'eapo-gym[reasoning-gym]'"
        ) from error
    return reasoning_gym.create_dataset(name, **kwargs)


class ReasoningGymProblemSet(ProblemSet):
    """``size`` problems of one split of the reasoning-gym dataset ``dataset`` (``config``: its options)."""

    def __init__(
        self, dataset: str, split: str = "train", seed: int = 0, size: int | None = None, **config: Any
    ) -> None:
        if split not in DEFAULT_SIZE:
            raise ValueError(f"reasoning_gym problems have splits {tuple(DEFAULT_SIZE)}, not {split!r}")
        self.dataset, self.split, self.seed = dataset, split, seed
        self.size = DEFAULT_SIZE[split] if size is None else size
        if self.size <= 0:
            raise ValueError(f"size must be positive, got {self.size}")
        self.name = f"{PREFIX}{dataset}/{split}"
        self._data = _create_dataset(dataset, size=self.size * ATTEMPTS, seed=seed, **config)

    def __len__(self) -> int:
        return self.size

    def _problem(self, index: int) -> Problem:
        attempt, entry = draw_in_split(
            self.split, lambda a: self._data[index * ATTEMPTS + a], lambda e: e["question"], ATTEMPTS
        )
        if entry.get("answer") is None:
            raise ValueError(f"{self.name} item {index} has no gold answer (reasoning-gym scores it itself)")
        return Problem(
            id=f"reasoning_gym/{self.dataset}/{self.split}/{index}" + (f"/s{self.seed}" if self.seed else ""),
            question=entry["question"],
            answer=str(entry["answer"]),
            source="reasoning_gym",
            kind=self.dataset,
            metadata={
                "split": self.split,
                "index": index,
                "seed": self.seed,
                "attempt": attempt,
                "reasoning_gym": entry.get("metadata", {}),
            },
        )

    def get(self, problem_id: str) -> Problem:
        """The problem an id names, in O(1); ``KeyError`` unless it belongs to this set."""
        match = _ID.fullmatch(problem_id)
        if match is None or match["name"] != self.dataset or match["split"] != self.split:
            raise KeyError(f"no problem with id {problem_id!r} in {self.name}")
        index = int(match["index"])
        if index >= self.size:
            raise KeyError(
                f"no problem with id {problem_id!r} in {self.name}: beyond its {self.size} problems"
            )
        problem = self._problem(index)
        if problem.id != problem_id:
            raise KeyError(f"no problem with id {problem_id!r} in {self.name}; did you mean {problem.id!r}?")
        return problem
