"""Problem sources: built-in generators, CHAMP, reasoning-gym, JSON/JSONL files and a user's
own records, all behind ``load_problems``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import ListProblemSet, Problem, ProblemSet
from .champ import load_champ
from .files import SUFFIXES, load_file
from .generators import KINDS, GeneratedProblemSet, generate_problem
from .reasoning_gym import PREFIX, ReasoningGymProblemSet
from .records import problem_from_dict, problems_from_records, select_problems

__all__ = [
    "GeneratedProblemSet",
    "ListProblemSet",
    "Problem",
    "ProblemSet",
    "ReasoningGymProblemSet",
    "generate_problem",
    "load_champ",
    "load_file",
    "load_problems",
    "problem_from_dict",
]

NAMES = (*KINDS, "mixed", "champ")


def load_problems(
    problems: str | os.PathLike[str] | ProblemSet | Sequence[Problem] | Sequence[Mapping[str, Any]] = "mixed",
    split: str = "train",
    difficulty: int | Sequence[int] | None = None,
    seed: int = 0,
    size: int | None = None,
) -> ProblemSet:
    """The problem set ``problems`` names, for one ``split``.

    ``problems`` is a generator name (``arithmetic``, ``linear``, ``fractions``, ``word``, or
    ``mixed`` for all four interleaved), ``champ``, ``reasoning_gym:<dataset>``, a ``.json`` /
    ``.jsonl`` path, a list of record dicts, a list of ``Problem`` or a ``ProblemSet`` (the last
    two are used as given). ``split`` is ``train`` or ``test`` (finite sources: also ``all``);
    ``difficulty`` (1-5, or several) selects generator levels or filters data that has levels,
    ``None`` meaning all; ``seed`` varies generated and reasoning-gym problems; ``size`` is the
    number of generated problems or the most taken from finite sources.
    """
    if isinstance(problems, ProblemSet):
        return problems
    if isinstance(problems, str | os.PathLike):
        name = os.fspath(problems)
        if name in KINDS or name == "mixed":
            return GeneratedProblemSet(KINDS if name == "mixed" else name, split, difficulty, seed, size)
        if name == "champ":
            return load_champ(split, difficulty, size)
        if name.startswith(PREFIX):
            if difficulty is not None:
                raise ValueError(
                    f"{name} has no difficulty levels; pass its own options to ReasoningGymProblemSet"
                )
            return ReasoningGymProblemSet(name.removeprefix(PREFIX), split, seed, size)
        if Path(name).suffix in SUFFIXES:
            return load_file(name, split, difficulty, size)
        raise ValueError(
            f"unknown problems {name!r}; choose from {', '.join(NAMES)}, {PREFIX}<dataset>, "
            f"or a path to a {' or '.join(SUFFIXES)} file"
        )
    items = list(problems)
    if items and all(isinstance(p, Problem) for p in items):
        return ListProblemSet(items)
    if items and all(isinstance(p, Mapping) for p in items):
        records = problems_from_records(((f"problem record {i}", r) for i, r in enumerate(items)), "user")
        return select_problems(records, name="user", split=split, difficulty=difficulty, size=size)
    raise TypeError(
        "problems must be a name, a path, a ProblemSet, or a non-empty list of Problem or of dicts"
    )
