"""Linear equations with integer solutions: ``3x+5=20, x=?``; harder levels add negatives,
x on both sides and brackets."""

from __future__ import annotations

import random

from .common import Generated, signed


def x_term(k: int) -> str:
    """The term ``k*x`` at the start of an expression: ``x``, ``-x``, ``3x``."""
    return {1: "x", -1: "-x"}.get(k, f"{k}x")


def lin(k: int, c: int) -> str:
    """``k*x + c`` written compactly: ``3x+5``, ``-x``, ``7``."""
    if k == 0:
        return str(c)
    return x_term(k) + (signed(c) if c else "")


def minus_x(k: int) -> str:
    """Subtracting ``k*x`` from an expression: ``-3x``, ``+3x``, ``-x``."""
    return f"-{x_term(k)}" if k > 0 else f"+{x_term(-k)}"


def _nonzero(rng: random.Random, high: int, low: int = 1) -> int:
    return rng.choice((-1, 1)) * rng.randint(low, high)


def _divide(total: int, k: int) -> list[str]:
    """The steps from ``k*x = total`` to ``x = total/k``."""
    x = total // k
    if k == 1:
        return []
    return [f"x={total}/{k if k > 0 else f'({k})'}={x}"]


def _isolate(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    """``k*x + b = c`` (levels 1-3): equation, steps, first hint."""
    if difficulty == 1:
        k, b = 1, _nonzero(rng, 50)
        x = rng.randint(max(0, -b), 60)
    elif difficulty == 2:
        k, x, b = rng.randint(2, 9), rng.randint(1, 12), rng.randint(1, 30)
    else:
        k, x, b = _nonzero(rng, 12, 2), _nonzero(rng, 20), _nonzero(rng, 50)
    c = k * x + b
    move = f"Subtract {b} from both sides." if b > 0 else f"Add {-b} to both sides."
    return f"{lin(k, b)}={c}", [f"{x_term(k)}={c}{signed(-b)}={c - b}", *_divide(c - b, k)], move


def _both_sides(rng: random.Random) -> tuple[str, list[str], str]:
    """``a*x + b = c*x + d`` (level 4)."""
    a, c = rng.sample([n for n in range(-12, 13) if n], 2)
    x, b = _nonzero(rng, 20), _nonzero(rng, 50)
    d = (a - c) * x + b
    k, total = a - c, d - b
    move = f"Subtract {x_term(c)} from both sides." if c > 0 else f"Add {x_term(-c)} to both sides."
    steps = [f"{x_term(a)}{minus_x(c)}={d}{signed(-b)}", f"{x_term(k)}={total}"]
    return f"{lin(a, b)}={lin(c, d)}", steps + _divide(total, k), move


def _brackets(rng: random.Random) -> tuple[str, list[str], str]:
    """``a*(x + b) + c = d*x + e`` (level 5)."""
    a, b = _nonzero(rng, 9, 2), _nonzero(rng, 20)
    c = _nonzero(rng, 50)
    while a * b + c == 0:
        c = _nonzero(rng, 50)
    d = rng.choice([n for n in range(-12, 13) if n and n != a])
    x = _nonzero(rng, 25)
    const = a * b + c
    e = (a - d) * x + const
    k, total = a - d, e - const
    bracket = f"{a}(x{signed(b)})"
    steps = [
        f"{x_term(a)}{signed(a * b)}{signed(c)}={lin(d, e)}",
        f"{lin(a, const)}={lin(d, e)}",
        f"{x_term(a)}{minus_x(d)}={e}{signed(-const)}",
        f"{x_term(k)}={total}",
    ]
    return f"{bracket}{signed(c)}={lin(d, e)}", steps + _divide(total, k), f"Expand {bracket} first."


STRATEGY = {
    1: "Get x alone by undoing the addition or subtraction.",
    2: "Undo the constant term first, then divide by the number in front of x.",
    3: "Undo the constant term first, then divide by the number in front of x.",
    4: "Collect the x terms on the left and the numbers on the right.",
    5: "Expand the brackets, then collect the x terms on the left and the numbers on the right.",
}


def generate(rng: random.Random, difficulty: int) -> Generated:
    """A linear equation in x with an integer solution, solved step by step."""
    if difficulty <= 3:
        equation, steps, move = _isolate(rng, difficulty)
    elif difficulty == 4:
        equation, steps, move = _both_sides(rng)
    else:
        equation, steps, move = _brackets(rng)
    answer = steps[-1].rsplit("=", 1)[1]
    return Generated(f"{equation}, x=?", answer, tuple(steps), (STRATEGY[difficulty], move))
