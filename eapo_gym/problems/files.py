"""Problems from a ``.json`` file (a list of records, or ``{"problems": [...]}``) or a ``.jsonl``
file (one record per line); record fields as in ``records``. GSM8K and MATH files load as is."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import ListProblemSet
from .records import problems_from_records, select_problems
from .splits import TEST_FRACTION

SUFFIXES = (".json", ".jsonl")


def read_records(path: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """``(location, record)`` pairs of a JSON/JSONL file; ``ValueError`` naming the line on bad JSON.

    Blank lines of a JSONL file are skipped; every other line must hold one JSON value.
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: problem files must end in {' or '.join(SUFFIXES)}")
    with path.open(encoding="utf-8") as file:
        if path.suffix == ".jsonl":
            for lineno, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{lineno}", json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({error.msg})") from error
            return
        try:
            data = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from error
    if isinstance(data, dict) and "problems" in data:
        data = data["problems"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: a .json problem file must hold a list of records or {{'problems': [...]}}")
    for index, record in enumerate(data):
        yield f"{path}: record {index}", record


def load_file(
    path: str | os.PathLike[str],
    split: str = "train",
    difficulty: int | Sequence[int] | None = None,
    size: int | None = None,
    test_fraction: float = TEST_FRACTION,
) -> ListProblemSet:
    """The problems of one split of a JSON/JSONL file (see ``records.select_problems``)."""
    path = Path(path)
    problems = problems_from_records(read_records(path), source=path.stem)
    if not problems:
        raise ValueError(f"{path}: no problem records")
    return select_problems(
        problems, name=path.stem, split=split, difficulty=difficulty, size=size, test_fraction=test_fraction
    )
