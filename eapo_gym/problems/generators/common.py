"""What a generator returns, and the term-by-term evaluation shared by the numeric generators."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

V = TypeVar("V")

# (left, operator, right) -> (result, step text)
StepFn = Callable[[V, str, V], tuple[V, str]]


class Generated(NamedTuple):
    """One generated question with its canonical answer, solution steps and hints."""

    question: str
    answer: str
    steps: tuple[str, ...]
    hints: tuple[str, ...]


def signed(n: int) -> str:
    """``n`` with an explicit sign, for appending to an expression: ``+5``, ``-5``."""
    return f"+{n}" if n >= 0 else str(n)


def int_step(a: int, op: str, b: int) -> tuple[int, str]:
    """Apply ``+``, ``-`` or ``*`` and write the step, e.g. ``(68, "23+45=68")``."""
    result = a + b if op == "+" else a - b if op == "-" else a * b
    return result, f"{a}{op}{b}={result}"


def start_hint(steps: Sequence[str]) -> str:
    """A hint naming the first operation without its result: ``Start with 23+45.``"""
    return f"Start with {steps[0].split('=')[0]}."


def render(terms: Sequence[Sequence[V]], ops: Sequence[str], show: Callable[[V], str]) -> str:
    """``terms`` (each a product of factors) joined by ``ops`` (``+``/``-``), e.g. ``12+7*34-56``."""
    parts = ["*".join(show(f) for f in terms[0])]
    for op, term in zip(ops, terms[1:], strict=True):
        parts.append(op + "*".join(show(f) for f in term))
    return "".join(parts)


def evaluate(terms: Sequence[Sequence[V]], ops: Sequence[str], step: StepFn[V]) -> tuple[V, list[str]]:
    """Products first, then ``+``/``-`` left to right; the value and one step text per operation."""
    steps: list[str] = []
    values = []
    for term in terms:
        value = term[0]
        for factor in term[1:]:
            value, text = step(value, "*", factor)
            steps.append(text)
        values.append(value)
    total = values[0]
    for op, value in zip(ops, values[1:], strict=True):
        total, text = step(total, op, value)
        steps.append(text)
    return total, steps


def random_terms(
    rng: random.Random, n_terms: int, n_products: int, number: Callable[[], V], factor: Callable[[], V]
) -> list[list[V]]:
    """``n_terms`` terms, ``n_products`` of them (at random places) a ``factor() * number()`` product."""
    products = set(rng.sample(range(n_terms), n_products))
    return [[factor(), number()] if i in products else [number()] for i in range(n_terms)]
