"""Built-in procedural problem generators and the problem set that serves them.

Item ``j`` of a (kind, split, difficulty, seed) stream is generated from a ``random.Random``
seeded by a stable hash of those values; a question belongs to the split its own text hashes
to (``splits.split_of``), and a candidate landing in the other split is redrawn with the next
attempt number, so train and test never share a question.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from ..base import Problem, ProblemSet
from ..splits import draw_in_split, seeded_rng
from . import arithmetic, fractions, linear, word
from .common import Generated

GENERATORS: dict[str, Callable[[random.Random, int], Generated]] = {
    "arithmetic": arithmetic.generate,
    "linear": linear.generate,
    "fractions": fractions.generate,
    "word": word.generate,
}
KINDS = tuple(GENERATORS)
DIFFICULTIES = (1, 2, 3, 4, 5)
SPLITS = ("train", "test")
DEFAULT_SIZE = {"train": 10_000, "test": 500}
MAX_ATTEMPTS = 1_000

_ID = re.compile(
    r"(?P<kind>[a-z]+)/(?P<split>[a-z]+)/d(?P<difficulty>\d+)/(?P<index>\d+)(?:/s(?P<seed>-?\d+))?"
)


def problem_id(kind: str, split: str, difficulty: int, index: int, seed: int = 0) -> str:
    """``arithmetic/train/d2/17``, with ``/s<seed>`` appended for a non-zero seed."""
    return f"{kind}/{split}/d{difficulty}/{index}" + (f"/s{seed}" if seed else "")


def _validate(kinds: Sequence[str], split: str, difficulties: Sequence[int]) -> None:
    for kind in kinds:
        if kind not in GENERATORS:
            raise ValueError(f"unknown generator {kind!r}; choose from {', '.join(KINDS)}")
    if not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"generator kinds must be distinct and non-empty, got {tuple(kinds)}")
    if split not in SPLITS:
        raise ValueError(f"generated problems have splits {SPLITS}, not {split!r}")
    bad = [d for d in difficulties if d not in DIFFICULTIES]
    if bad or not difficulties or len(set(difficulties)) != len(difficulties):
        raise ValueError(
            f"difficulties must be distinct values from {DIFFICULTIES}, got {tuple(difficulties)}"
        )


def generate_problem(kind: str, split: str, difficulty: int, index: int, seed: int = 0) -> Problem:
    """Item ``index`` of the ``kind`` generator's ``split`` stream at ``difficulty``."""
    _validate((kind,), split, (difficulty,))
    if index < 0:
        raise ValueError(f"problem index must be >= 0, got {index}")
    attempt, g = draw_in_split(
        split,
        lambda a: GENERATORS[kind](
            seeded_rng("eapo-gym", kind, split, difficulty, seed, index, a), difficulty
        ),
        lambda g: g.question,
        MAX_ATTEMPTS,
    )
    return Problem(
        id=problem_id(kind, split, difficulty, index, seed),
        question=g.question,
        answer=g.answer,
        solution_steps=g.steps,
        hints=g.hints,
        difficulty=difficulty,
        source="generated",
        kind=kind,
        metadata={"split": split, "index": index, "seed": seed, "attempt": attempt},
    )


class GeneratedProblemSet(ProblemSet):
    """``size`` generated problems, interleaving ``kinds`` and then ``difficulties``.

    Index ``i`` is kind ``kinds[i % K]`` at difficulty ``difficulties[(i // K) % D]``, item
    ``i // (K * D)`` of that stream; ``difficulty=None`` cycles through levels 1-5.
    """

    def __init__(
        self,
        kinds: str | Sequence[str] = KINDS,
        split: str = "train",
        difficulty: int | Sequence[int] | None = None,
        seed: int = 0,
        size: int | None = None,
    ) -> None:
        self.kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        if isinstance(difficulty, int):
            self.difficulties: tuple[int, ...] = (difficulty,)
        else:
            self.difficulties = DIFFICULTIES if difficulty is None else tuple(difficulty)
        _validate(self.kinds, split, self.difficulties)
        self.split, self.seed = split, seed
        self.size = DEFAULT_SIZE[split] if size is None else size
        if self.size <= 0:
            raise ValueError(f"size must be positive, got {self.size}")
        label = "mixed" if self.kinds == KINDS else "+".join(self.kinds)
        self.name = f"{label}/{split}"

    def __len__(self) -> int:
        return self.size

    def _problem(self, index: int) -> Problem:
        n_kinds, n_levels = len(self.kinds), len(self.difficulties)
        kind = self.kinds[index % n_kinds]
        difficulty = self.difficulties[index // n_kinds % n_levels]
        return generate_problem(kind, self.split, difficulty, index // (n_kinds * n_levels), self.seed)

    def get(self, problem_id: str) -> Problem:
        """Regenerate the problem an id names, in O(1); ``KeyError`` unless it belongs to this set."""
        match = _ID.fullmatch(problem_id)
        if match is None:
            raise KeyError(f"{problem_id!r} is not a generated problem id like 'arithmetic/train/d2/17'")
        kind, split = match["kind"], match["split"]
        difficulty, item = int(match["difficulty"]), int(match["index"])
        seed = int(match["seed"] or 0)
        if kind not in self.kinds or split != self.split or difficulty not in self.difficulties:
            raise KeyError(
                f"no problem with id {problem_id!r} in {self.name}: it holds kinds {self.kinds}, "
                f"split {self.split!r}, difficulties {self.difficulties}"
            )
        if seed != self.seed:
            raise KeyError(f"no problem with id {problem_id!r} in {self.name}: its seed is {self.seed}")
        n_kinds, n_levels = len(self.kinds), len(self.difficulties)
        index = (item * n_levels + self.difficulties.index(difficulty)) * n_kinds + self.kinds.index(kind)
        if index >= self.size:
            raise KeyError(
                f"no problem with id {problem_id!r} in {self.name}: beyond its {self.size} problems"
            )
        problem = self._problem(index)
        if problem.id != problem_id:  # e.g. a zero-padded index or an explicit "/s0"
            raise KeyError(f"{problem_id!r} is not canonical; the id is {problem.id!r}")
        return problem
