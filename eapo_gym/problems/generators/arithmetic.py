"""Multi-step integer arithmetic: ``23+45+12=?``; harder levels add terms, subtraction and products."""

from __future__ import annotations

import random

from .common import Generated, evaluate, int_step, random_terms, render, start_hint

# difficulty -> (terms, number range, operators, products, factor range)
LEVELS: dict[int, tuple[int, tuple[int, int], str, int, tuple[int, int]]] = {
    1: (2, (10, 99), "+", 0, (0, 0)),
    2: (3, (10, 99), "+", 0, (0, 0)),
    3: (4, (10, 99), "+-", 0, (0, 0)),
    4: (5, (10, 99), "+-", 1, (2, 9)),
    5: (6, (100, 999), "+-", 2, (2, 19)),
}


def generate(rng: random.Random, difficulty: int) -> Generated:
    """An arithmetic expression of ``difficulty`` + 1 terms evaluated step by step."""
    n_terms, (low, high), operators, n_products, (f_low, f_high) = LEVELS[difficulty]
    terms = random_terms(
        rng, n_terms, n_products, lambda: rng.randint(low, high), lambda: rng.randint(f_low, f_high)
    )
    ops = [rng.choice(operators) for _ in range(n_terms - 1)]
    answer, steps = evaluate(terms, ops, int_step)
    if n_products:
        strategy = "Do the multiplications first, then add and subtract from left to right."
    else:
        strategy = "Work from left to right, one pair of numbers at a time."
    return Generated(f"{render(terms, ops, str)}=?", str(answer), tuple(steps), (strategy, start_hint(steps)))
