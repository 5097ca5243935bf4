"""Problems from plain records (JSON objects, a user's dicts) and the split/difficulty selection
shared by every finite source.

Recognised fields: ``problem`` or ``question``; ``answer`` (GSM8K style ``"...\\n#### 72"`` is
split into steps and answer); ``solution`` (a string split into steps, or a list of steps; its
last ``\\boxed{}`` is the answer when there is no ``answer``); ``hints`` (a list or one string);
``id``; ``difficulty`` or ``level`` (``"Level 3"`` -> 3); ``split``; ``kind``/``type``/``subject``;
``source``. Other fields are kept in ``metadata``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .base import ListProblemSet, Problem
from .splits import TEST_FRACTION, split_of

FIELDS = (
    "problem",
    "question",
    "answer",
    "solution",
    "hints",
    "id",
    "difficulty",
    "level",
    "split",
    "source",
)
KIND_FIELDS = ("kind", "type", "subject")
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_LEVEL = re.compile(r"\s*(?:level\s*)?(?:(?P<n>-?\d+)|\?)\s*", re.IGNORECASE)
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _math_open(text: str) -> bool:
    """Whether ``text`` ends inside a LaTeX display block (``\\[``, ``$$``, ``\\begin``)."""
    return (
        text.count("\\[") > text.count("\\]")
        or text.count("\\begin{") > text.count("\\end{")
        or text.count("$$") % 2 == 1
    )


def split_steps(text: str) -> tuple[str, ...]:
    """Solution text as steps: one per line (a display-math block stays whole), or per sentence
    when it is a single line. GSM8K ``<<...>>`` calculator annotations are removed."""
    steps: list[str] = []
    current = ""
    for line in _CALCULATOR.sub("", text).splitlines():
        current = f"{current} {line.strip()}".strip()
        if current and not _math_open(current):
            steps.append(current)
            current = ""
    if current:
        steps.append(current)
    if len(steps) == 1:
        steps = [s.strip() for s in _SENTENCE_END.split(steps[0]) if s.strip()]
    return tuple(steps)


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` in ``text`` (braces balanced), or ``None``."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed")
    for i in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin + 1 : i].strip()
    return None


def _difficulty(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    match = _LEVEL.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"difficulty/level must be an integer or like 'Level 3', got {value!r}")
    return None if match["n"] is None else int(match["n"])


def _answer_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"'answer' must be a string or a number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _string_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name!r} must be a string or a list of strings, got {value!r}")
    return tuple(_CALCULATOR.sub("", v).strip() for v in value if v.strip())


def problem_from_dict(record: Any, *, default_id: str | None = None, source: str = "") -> Problem:
    """A ``Problem`` from one record (``default_id`` when it has no ``id``); ``ValueError`` naming
    the field when the record is invalid."""
    if not isinstance(record, Mapping):
        raise ValueError(f"a problem record must be a JSON object, got {type(record).__name__}")
    question = record.get("problem", record.get("question"))
    if not isinstance(question, str) or not question.strip():
        raise ValueError("a problem record needs a non-empty 'problem' or 'question' string")
    answer, steps = record.get("answer"), ()
    if isinstance(answer, str) and "####" in answer:  # GSM8K: rationale lines, then "#### 72"
        rationale, answer = answer.rsplit("####", 1)
        steps = split_steps(rationale)
        answer = answer.strip()
        if _THOUSANDS.fullmatch(answer):
            answer = answer.replace(",", "")
    solution = record.get("solution")
    if isinstance(solution, str):
        steps = split_steps(solution)
    elif solution is not None:
        steps = _string_list("solution", solution)
    if answer is None and isinstance(solution, str):
        answer = last_boxed(solution)
    if answer is None:
        raise ValueError("a problem record needs an 'answer' (or a 'solution' with a \\boxed{} answer)")
    answer = _answer_text(answer)
    if not answer:
        raise ValueError("'answer' is empty")
    problem_id = record.get("id", default_id)
    if isinstance(problem_id, bool) or not isinstance(problem_id, str | int) or problem_id == "":
        raise ValueError(f"'id' must be a non-empty string or an integer, got {problem_id!r}")
    split = record.get("split")
    if split is not None and not (isinstance(split, str) and split):
        raise ValueError(f"'split' must be a non-empty string, got {split!r}")
    kind = next((record[k] for k in KIND_FIELDS if record.get(k) is not None), "")
    extra = {k: v for k, v in record.items() if k not in FIELDS + KIND_FIELDS}
    return Problem(
        id=str(problem_id),
        question=question.strip(),
        answer=answer,
        solution_steps=steps,
        hints=_string_list("hints", record.get("hints", [])),
        difficulty=_difficulty(record.get("difficulty", record.get("level"))),
        source=str(record.get("source", source)),
        kind=str(kind),
        metadata=extra | ({"split": split} if split else {}),
    )


def problems_from_records(records: Iterable[tuple[str, Any]], source: str) -> list[Problem]:
    """Problems from ``(location, record)`` pairs; errors name the location (file and line)."""
    problems = []
    for index, (location, record) in enumerate(records):
        try:
            problems.append(problem_from_dict(record, default_id=f"{source}/{index}", source=source))
        except ValueError as error:
            raise ValueError(f"{location}: {error}") from error
    return problems


def select_problems(
    problems: Sequence[Problem],
    *,
    name: str,
    split: str = "train",
    difficulty: int | Sequence[int] | None = None,
    size: int | None = None,
    test_fraction: float = TEST_FRACTION,
) -> ListProblemSet:
    """The problems of one split (a record's own ``split``, else a stable hash of its question;
    ``"all"`` keeps every one) at the given difficulties, at most ``size`` of them, in order."""
    chosen = list(problems)
    if split != "all":
        chosen = [p for p in chosen if p.metadata.get("split", split_of(p.question, test_fraction)) == split]
    if difficulty is not None:
        wanted = {difficulty} if isinstance(difficulty, int) else set(difficulty)
        if all(p.difficulty is None for p in problems):
            raise ValueError(f"{name} has no difficulty levels to filter by (asked for {difficulty!r})")
        chosen = [p for p in chosen if p.difficulty in wanted]
    if size is not None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        chosen = chosen[:size]
    if not chosen:
        splits = sorted({p.metadata.get("split", split_of(p.question, test_fraction)) for p in problems})
        raise ValueError(
            f"{name} has no problems for split={split!r}, difficulty={difficulty!r} "
            f"(of {len(problems)} problems; splits present: {', '.join(splits)})"
        )
    return ListProblemSet(chosen, name=f"{name}/{split}")
