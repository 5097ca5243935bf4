"""Equivalence of parsed answers, gold first: relations, sets, tuples, matrices, ±, approximations."""

from __future__ import annotations

import pytest

from eapo_gym.verify.equivalence import equivalent
from eapo_gym.verify.limits import Budget, LimitExceeded
from eapo_gym.verify.normalize import normalize
from eapo_gym.verify.parser import parse


def _same(gold: str, pred: str) -> bool:
    budget = Budget(5.0)
    return equivalent(parse(normalize(gold)[0], budget), parse(normalize(pred)[0], budget), budget)


def _matrix(*rows: str) -> str:
    return "\\begin{pmatrix}" + " \\\\ ".join(rows) + "\\end{pmatrix}"


_A, _B, _SWAP = _matrix("1 & 2", "3 & 4"), _matrix("5 & 6", "7 & 8"), _matrix("0 & 1", "1 & 0")

CASES = [
    # ± expands to the list of both values, wherever it sits
    ("1 \\pm 2", "3, -1", True),
    ("1 \\pm 2", "-1, 3", True),
    ("1 \\pm 2", "3", False),
    ("\\pm 2", "2, -2", True),
    ("\\pm 2", "2", False),
    ("1 \\pm 1, 5", "0, 2, 5", True),
    ("1 \\pm 1, 5", "0, 2", False),
    ("2(1 \\pm 1)", "0, 4", True),
    ("(1 \\pm 1)^2", "0, 4", True),
    ("2^{\\pm 1}", "2, \\frac{1}{2}", True),
    ("\\sqrt{8 \\pm 1}", "3, \\sqrt{7}", True),
    ("x = 1 \\pm 1", "x = 0 \\text{ or } x = 2", True),
    ("x = 1 \\pm 1", "x = 0", False),
    ("(10 \\pm 5)\\%", "5\\%, 15\\%", True),
    ("(30 \\pm 15)^\\circ", "15^\\circ, 45^\\circ", True),
    ("1 \\pm 1 \\pm 1 \\pm 1", "4, 2, 0, -2", True),
    ("1 \\pm 1 \\pm 1 \\pm 1", "4, 2, 0", False),
    # infinities
    ("\\infty", "\\infty", True),
    ("-\\infty", "-\\infty", True),
    ("\\infty", "-\\infty", False),
    ("-\\infty", "\\infty", False),
    ("\\infty", "5", False),
    ("5", "-\\infty", False),
    # percent and degrees read either way
    ("50\\%", "0.5", True),
    ("50\\%", "50", True),
    ("50\\%", "5", False),
    ("0.5", "50\\%", True),
    ("50\\%", "50\\%", True),
    ("90^\\circ", "\\frac{\\pi}{2}", True),
    ("90^\\circ", "90", True),
    ("90^\\circ", "\\pi", False),
    # approximations: the ≈ tail of a chain is dropped; decimals only approximate irrationals
    ("2", "x \\approx 2", True),
    ("2", "x = 2 \\approx 2.0", True),
    ("\\frac{2}{3}", "\\frac{2}{3} \\approx 0.667", True),
    ("\\frac{\\sqrt{2}}{2}", "y = \\frac{\\sqrt{2}}{2} \\approx 0.7", True),
    ("x \\approx 1.41", "\\sqrt{2}", True),
    ("x \\approx 1.42", "\\sqrt{2}", False),
    ("1.414", "\\sqrt{2}", True),
    ("1.414", "\\frac{707}{500}", True),
    ("1.414", "\\frac{1414}{999}", False),
    ("\\sqrt{2}", "1.4142", True),
    ("\\sqrt{2}", "1.4143", False),
    ("\\sqrt{2}", "1.41", False),
    ("\\frac{1414}{999}", "1.4154", False),
    ("\\pi", "3.142", True),
    ("\\pi", "3.141", False),
    ("1.5", "1.50", True),
    ("1.5", "1.51", False),
    # labels and targets: the gold side unwraps names, the predicted side also named sums
    ("a + b = 3", "3", False),
    ("3", "a + b = 3", True),
    ("3", "a - b = 3", True),
    ("3", "2a + b = 3", False),
    ("9", "a^2 = 9", False),
    ("2", "\\frac{a}{b} = 2", True),
    ("2", "\\frac{2}{b} = 2", False),
    ("3", "|x| = 3", True),
    ("3", "\\sqrt{x} = 3", False),
    ("(1, 2)", "(x, y) = (1, 2)", True),
    ("(x, y) = (1, 2)", "(1, 2)", True),
    ("(x, 2) = (1, 2)", "(1, 2)", False),
    ("2x", "f^{-1}(x) = 2x", True),
    ("6", "g(2) = 6", True),
    ("6", "x(2) = 6", False),
    ("2f(x)", "f(x) = 2f(x)", False),
    ("5", "5 + 0 = 5", True),
    # assignments against assignments
    ("x = 4", "x = 4", True),
    ("x = 4", "y = 4", False),
    ("x = 4", "4 = x", True),
    ("5 = y", "y = 5", True),
    ("x = 4", "2x = 8", False),
    ("x = 4", "x = 5", False),
    # equations and inequalities: proportional, a positive factor for inequalities
    ("2x + 4y = 6", "x + 2y = 3", True),
    ("2x + 4y = 6", "-x - 2y = -3", True),
    ("2x + 4y = 6", "x + 2y = 4", False),
    ("x^2 - y^2 = 0", "(x - y)(x + y) = 0", True),
    ("y = 2x + 1", "y = x + x + 1 = 2x + 1", True),
    ("x + y < 3", "3 > x + y", True),
    ("x + y < 3", "2x + 2y < 6", True),
    ("x + y < 3", "-x - y > -3", True),
    ("x + y < 3", "x + y > 3", False),
    ("x + y < 3", "x + y \\le 3", False),
    ("x + y < 3", "-x - y < -3", False),
    ("x > y", "y < x", True),
    ("x > y", "x < y", False),
    ("x \\ne 2", "x \\ne 2", True),
    ("x \\ne 2", "x \\ge 2", False),
    ("x \\ne 2", "x > 2", False),
    ("1 + 1 = 2", "2 = 1 + 1", True),
    ("1 + 1 = 2", "2 = 1 + 2", False),
    ("1 < 2", "2 > 1", True),
    ("1 < 2", "1 > 2", False),
    # relations in one variable are sets of reals
    ("x > 2", "(2, \\infty)", True),
    ("x \\ge 2", "[2, \\infty)", True),
    ("x \\ge 2", "(2, \\infty)", False),
    ("x < 2", "(-\\infty, 2)", True),
    ("x \\le 2", "(-\\infty, 2]", True),
    ("x \\le 2", "(-\\infty, 2)", False),
    ("(2, \\infty)", "2 < x", True),
    ("[2, \\infty)", "2 \\le x", True),
    ("[2, \\infty)", "2 < x", False),
    ("(-\\infty, 2]", "2 \\ge x", True),
    ("(1, 3]", "1 < x \\le 3", True),
    ("[1, 3)", "1 < x \\le 3", False),
    ("(1, 3]", "3 \\ge x > 1", True),
    ("[1, 3)", "3 > x \\ge 1", True),
    ("[1, 3)", "3 \\ge x > 1", False),
    ("(1, 3)", "1 < x > 0", False),
    ("(0, 1)", "0 < x < y", False),
    ("x > 2", "y > 2", True),
    ("x \\in [1, 2]", "1 \\le x \\le 2", True),
    ("x \\in [1, 2]", "x \\in [1, 2]", True),
    ("x \\in [1, 2]", "x \\in (1, 2)", False),
    ("[0, 1]", "x \\in [0, 1]", True),
    ("x \\in [0, 1]", "[0, 1]", True),
    ("\\{1, 2\\}", "x \\in \\{1, 2\\}", True),
    ("(2, 5)", "2 < x < 5", True),
    ("(2, 5, 7)", "2 < x < 5", False),
    ("2", "x > 2", False),
    # intervals and unions
    ("[-\\infty, 2)", "(-\\infty, 2)", True),
    ("(2, \\infty]", "(2, \\infty)", True),
    ("[1, 2)", "(1, 2)", False),
    ("[1, 2)", "[1, 2]", False),
    ("(1, 3] \\cup (4, 5)", "(4, 5) \\cup (1, 3]", True),
    ("(1, 3] \\cup (4, 5)", "(4, 5) \\cup (1, 3)", False),
    ("[1, 2] \\cup (3, 4)", "(3, 4) \\cup [1, 2]", True),
    ("[1, 2] \\cup (3, 4)", "(3, 4) \\cup (1, 2)", False),
    ("\\{1\\} \\cup [2, 3]", "[2, 3] \\cup \\{1\\}", True),
    ("\\{1\\} \\cup [2, 3]", "[1, 3]", False),
    ("(-\\infty, 1) \\cup (2, \\infty)", "x < 1 \\text{ or } x > 2", True),
    ("(-\\infty, 1) \\cup (2, \\infty)", "x < 1 \\text{ or } x > 3", False),
    ("(-\\infty, 1) \\cup (2, \\infty)", "x < 1 \\text{ or } x = 3", False),
    ("(-\\infty, 1) \\cup (2, \\infty)", "5", False),
    ("\\{1\\} \\cup x", "\\{1\\} \\cup x", False),
    # sets, tuples and lists
    ("(1, 2)", "[1, 2]", False),
    ("[1, 2]", "(1, 2)", False),
    ("(1, 2, 3)", "[1, 2, 3]", True),
    ("(1, 2, 3)", "(1, 3, 2)", False),
    ("\\{1, 2, 3\\}", "\\{1, 3, 2\\}", True),
    ("\\{5\\}", "5", True),
    ("5", "\\{5\\}", True),
    ("\\{5, 6\\}", "5", False),
    ("5", "\\{5, 6\\}", False),
    ("1, 1, 2", "2, 1", True),
    ("1, 2, 2", "1, 1, 2", False),
    ("1, 2, 2", "2, 1, 2", True),
    ("1, 2", "1, 1", False),
    ("1, 2, 3", "1, 2", False),
    ("(1, 2), (3, 4)", "(3, 4), (1, 2)", True),
    ("(1, 2), (3, 4)", "(4, 3), (1, 2)", False),
    # grouped assignments: names repeating in one order form tuples
    ("p=5, q=2; p=7, q=2", "(5, 2), (7, 2)", True),
    ("(5, 2), (7, 2)", "p=5, q=2; p=7, q=2", True),
    ("p=5, q=2; p=7, q=2", "(2, 5), (2, 7)", False),
    ("p=5, q=2, q=7, p=2", "(5, 2), (2, 7)", False),
    ("p=5, q=2, p=3", "(5, 2), (3)", False),
    ("x = 1, x = 2", "1, 2", True),
    ("x = 1, x = 2", "1, 3", False),
    ("x = 1, y = 2", "(1, 2)", True),
    ("x = 1, y = 2", "(2, 1)", False),
    ("x = 1, y = 2", "2, 1", False),
    ("x = 1, y = 2", "y = 2, x = 1", True),
    ("x = 1, y = 2", "y = 1, x = 2", False),
    # matrices: rows, vectors, sums and products
    (_A, "[[1, 2], [3, 4]]", True),
    (_A, "[[1, 2], [3, 5]]", False),
    (_A, "[[1, 2], [3]]", False),
    (_A, "(1, 2, 3, 4)", False),
    (_A, "5", False),
    (_matrix("1 & 2"), "(1, 2)", True),
    (_matrix("1 & 2"), "(2, 1)", False),
    (_matrix("1", "2"), "1, 2", True),
    (_matrix("1", "2"), "1, 2, 3", False),
    (_matrix("6 & 8", "10 & 12"), f"{_A} + {_B}", True),
    (_matrix("6 & 8", "10 & 13"), f"{_A} + {_B}", False),
    (_matrix("2 & 1", "4 & 3"), f"{_A} {_SWAP}", True),
    (_matrix("3 & 4", "1 & 2"), f"{_SWAP} \\cdot {_A}", True),
    (_matrix("6 & 4", "2 & 0"), f"{_SWAP} \\cdot 2 \\cdot {_B} - 2{_B} {_SWAP} {_SWAP}", False),
    (_matrix("4 & 2", "8 & 6"), f"{_A} \\cdot 2 \\cdot {_SWAP}", True),
    (_matrix("2 & 4", "6 & 8"), f"2{_A}", True),
    (_matrix("2 & 4", "6 & 8"), f"{_A} + 1", False),
    (_matrix("2 & 4", "6 & 8"), f"{_A} + {_matrix('1 & 2')}", False),
    (_matrix("2 & 4", "6 & 8"), f"{_A} {_matrix('1 & 2')}", False),
    (_matrix("5", "11"), f"{_A} {_matrix('1', '2')}", True),
    (_matrix("5", "11"), f"{_A} {_matrix('2', '1')}", False),
    # anything without a value compares by structure
    ("\\gcd(x, 2)", "\\gcd(x, 2)", True),
    ("\\gcd(x, 2)", "\\gcd(2, x)", False),
    ("x + 1", "x + 2", False),
    ("x + 1", "1 + x", True),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), CASES)
def test_equivalent(gold: str, pred: str, expected: bool) -> None:
    assert _same(gold, pred) is expected


@pytest.mark.parametrize(
    ("gold", "pred"),
    [
        ("\\pm 1 \\pm 1 \\pm 1 \\pm 1", "0"),
        ("(1 \\pm 1)(2 \\pm 1)(3 \\pm 1)(4 \\pm 1)", "0"),
        (", ".join(["1"] * 65), "1"),
        ("1", ", ".join(["1"] * 65)),
        (_matrix("1 & 2 & 3 & 4", "1 & 2 & 3 & 4", "1 & 2 & 3 & 4", "1 & 2 & 3 & 4") * 6, "0"),
    ],
)
def test_equivalence_work_is_capped(gold: str, pred: str) -> None:
    with pytest.raises(LimitExceeded):
        _same(gold, pred)
