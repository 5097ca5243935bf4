"""CHAMP (Mao et al., 2024): 270 competition problems from the ``champ-dataset`` package, with
solution steps and the problem's annotated hints and concepts resolved to text.

CHAMP has no difficulty levels and no official split; ``split`` hashes each question (use
``split="all"`` for the whole benchmark).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from .base import ListProblemSet, Problem
from .records import select_problems
from .splits import TEST_FRACTION


def _problem(record: dict[str, Any], hints: dict[str, Any], concepts: dict[str, Any]) -> Problem:
    refs = record["ch_list"]  # hint ("H_...") and concept ("C_...") ids
    return Problem(
        id=f"champ/{record['identifier']}",
        question=record["_text"],
        answer=record["_answer"],
        solution_steps=tuple(step["_text"] for step in record["solution"]["steps"]),
        hints=tuple((hints.get(ref) or concepts[ref])["_text"] for ref in refs),
        source="champ",
        kind=record["category"],
        metadata={
            "hint_ids": [ref for ref in refs if ref in hints],
            "concept_ids": [ref for ref in refs if ref not in hints],
            "step_refs": [[refs[i] for i in step["ch_idxs"]] for step in record["solution"]["steps"]],
        },
    )


@cache
def champ_problems() -> tuple[Problem, ...]:
    """All 270 CHAMP problems, in dataset order (parsed once: the data file is 70 MB)."""
    text = (resources.files("champ_dataset") / "dataset_files" / "v0.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return tuple(_problem(record, data["hints"], data["concepts"]) for record in data["problems"].values())


def load_champ(
    split: str = "train",
    difficulty: int | Sequence[int] | None = None,
    size: int | None = None,
    test_fraction: float = TEST_FRACTION,
) -> ListProblemSet:
    """The CHAMP problems of one split (``"all"``: every problem)."""
    return select_problems(
        champ_problems(),
        name="champ",
        split=split,
        difficulty=difficulty,
        size=size,
        test_fraction=test_fraction,
    )
