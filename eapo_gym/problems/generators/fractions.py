"""Fraction arithmetic: ``1/3+1/4=?`` with the answer in lowest terms (``7/12``); harder levels
add unlike denominators, a product and more terms."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from .common import Generated, evaluate, random_terms, render, start_hint

# difficulty -> (terms, products, denominator range, max numerator, operators); level 1 has
# like denominators, numerators below the denominator.
LEVELS: dict[int, tuple[int, int, tuple[int, int], int, str]] = {
    1: (2, 0, (2, 20), 0, "+"),
    2: (2, 0, (2, 9), 0, "+-"),
    3: (2, 1, (2, 12), 12, "+-"),
    4: (3, 0, (2, 12), 12, "+-"),
    5: (3, 1, (2, 15), 15, "+-"),
}


def fraction_step(a: Fraction, op: str, b: Fraction) -> tuple[Fraction, str]:
    """Apply ``+``, ``-`` or ``*`` showing the common denominator or the raw product, then reduce."""
    parts = [f"{a}{op}{b}"]
    if op == "*":
        raw = (a.numerator * b.numerator, a.denominator * b.denominator)
        result = a * b
    else:
        den = math.lcm(a.denominator, b.denominator)
        an, bn = a.numerator * den // a.denominator, b.numerator * den // b.denominator
        if (an, bn) != (a.numerator, b.numerator):
            parts.append(f"{an}/{den}{op}{bn}/{den}")
        raw = (an + bn if op == "+" else an - bn, den)
        result = a + b if op == "+" else a - b
    if raw != (result.numerator, result.denominator):
        parts.append(f"{raw[0]}/{raw[1]}")
    parts.append(str(result))
    return result, "=".join(parts)


def _fraction(rng: random.Random, low: int, high: int, max_num: int) -> Fraction:
    """A fraction in lowest terms, not whole, with denominator in [low, high] and numerator at most
    ``max_num`` (0: below the denominator)."""
    while True:
        den = rng.randint(low, high)
        num = rng.randint(1, max_num or den - 1)
        if math.gcd(num, den) == 1:
            return Fraction(num, den)


def generate(rng: random.Random, difficulty: int) -> Generated:
    """A fraction expression evaluated step by step; the answer is in lowest terms."""
    n_terms, n_products, (low, high), max_num, operators = LEVELS[difficulty]
    if difficulty == 1:
        first = _fraction(rng, low, high, 0)
        second = _fraction(rng, first.denominator, first.denominator, 0)
        terms, ops = [[first], [second]], ["+"]
    else:

        def draw() -> Fraction:
            return _fraction(rng, low, high, max_num)

        terms = random_terms(rng, n_terms, n_products, draw, draw)
        ops = [rng.choice(operators) for _ in range(n_terms - 1)]
    answer, steps = evaluate(terms, ops, fraction_step)
    if difficulty == 1:
        strategy = "The denominators are the same: add the numerators."
    elif any(len(term) > 1 for term in terms):
        strategy = "Multiply numerators and denominators first; write sums over a common denominator."
    else:
        strategy = "Write the fractions over a common denominator."
    hints = (f"{strategy} Give the answer in lowest terms.", start_hint(steps))
    return Generated(f"{render(terms, ops, str)}=?", str(answer), tuple(steps), hints)
