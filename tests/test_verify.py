"""Correctness of eapo_gym.verify: extraction, equivalence categories and known false verdicts."""

from __future__ import annotations

import pytest

from eapo_gym.verify import extract_answer, is_correct, safe_parse

# (gold, response, expected)
CASES = [
    # integers, separators, unicode minus
    ("1000", "1,000", True),
    ("1000000", "1\\,000\\,000", True),
    ("1000000", "1 000 000", True),
    ("1000", "1{,}000", True),
    ("-5", "\u22125", True),
    ("-5", "5", False),
    ("24", "4!", True),
    # decimals, scientific notation
    ("0.5", ".50", True),
    ("1500", "1.5\\times 10^{3}", True),
    ("1500", "1.5e3", True),
    ("0.0015", "1.5\\times10^{-2}", False),
    ("3", "3.0", True),
    ("3", "2.9999", False),
    # fractions
    ("\\frac{1}{2}", "1/2", True),
    ("\\frac{1}{4}", "\\frac14", True),
    ("\\frac{1}{4}", "\\dfrac{2}{8}", True),
    ("-\\frac{2}{3}", "\\frac{2}{-3}", True),
    ("\\frac{7}{3}", "2\\frac{1}{3}", True),
    ("\\frac{2}{3}", "\\frac{3}{2}", False),
    # exact rationals compare exactly: a rounded decimal is not the fraction, either way round
    ("\\frac{1}{3}", "0.3333", False),
    ("0.33", "\\frac{1}{3}", False),
    ("2", "2.000001", False),
    ("2.000001", "2", False),
    ("\\frac{1}{2} + 10^{-9}", "0.5", False),
    ("0.5", "\\frac{1}{2} + 10^{-9}", False),
    ("\\frac{1}{2}", "0.5", True),
    # decimals against irrational values: correctly rounded, and a predicted one with >= 4 digits
    ("\\sqrt{2}", "1.414", True),
    ("\\sqrt{2}", "1.415", False),
    ("\\sqrt{2}", "1.41", False),
    ("1.41", "\\sqrt{2}", True),
    ("1.42", "\\sqrt{2}", False),
    ("\\pi", "3.1416", True),
    # repeating decimals
    ("\\frac{1}{3}", "0.\\overline{3}", True),
    ("\\frac{1}{6}", "0.1\\overline{6}", True),
    ("\\frac{1}{9}", "0.(1)", True),
    ("\\frac{1}{3}", "0.333...", True),
    ("1", "0.\\overline{9}", True),
    # percent, units, degrees, currency
    ("50", "50\\%", True),
    ("0.5", "50\\%", True),
    ("40\\%", "0.04", False),
    ("25", "25 \\text{ cm}", True),
    ("5 \\text{ cm}", "5 \\text{ m}", False),
    ("30^\\circ", "\\frac{\\pi}{6}", True),
    ("30", "30^\\circ", True),
    ("12.5", "\\$12.50", True),
    ("42", "42 apples", True),
    # radicals, pi, e, factorials, binomials
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\sqrt[3]{16}", "2\\sqrt[3]{2}", True),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True),
    ("2\\pi", "\\pi", False),
    ("1-\\frac{1}{e}", "\\frac{e-1}{e}", True),
    ("\\binom{10}{3}", "120", True),
    ("\\binom{10}{3}", "\\binom{10}{4}", False),
    ("2006 \\cdot 2005", "\\frac{2006!}{2004!}", True),
    # complex numbers
    ("3+4i", "4i+3", True),
    ("3+4i", "3-4i", False),
    ("1+i", "\\frac{2}{1-i}", True),
    ("5", "|3+4i|", True),
    # polynomials and expressions
    ("x^3+1", "x**3+1", True),
    ("x^2-1", "(x-1)(x+1)", True),
    ("x^2-1", "(x-1)^2", False),
    ("x^{2}y", "yx^2", True),
    ("\\sin 2x", "2\\sin x\\cos x", True),
    ("2x", "2y", False),
    # equations (gold first)
    ("x=2", "2", True),
    ("2", "x = 2", True),
    ("4", "2x+3=11", False),
    ("y=2x+3", "y = 3 + 2x", True),
    ("3x-y+13=0", "6x-2y+26=0", True),
    ("x = 5", "y = 5", False),
    ("x^2", "f(x) = x^2", True),
    ("\\frac{\\sqrt{2}}{2}", "x \\approx 0.7071", True),
    ("\\frac{2}{3}", "x \\approx 0.6667", False),
    ("x > 2", "2 < x", True),
    ("x \\ge 3", "x > 3", False),
    # sets, tuples, intervals
    ("\\{1,2,3\\}", "\\{3,2,1\\}", True),
    ("1, 2, 3", "3, 2, 1", True),
    ("(1,2)", "(2,1)", False),
    ("[1,2)", "[1, 2)", True),
    ("[1,2)", "(1,2]", False),
    ("(-\\infty, 0) \\cup (1, \\infty)", "(1,\\infty)\\cup(-\\infty,0)", True),
    ("(2, \\infty)", "x > 2", True),
    ("[2, 5]", "2 \\le x \\le 5", True),
    ("x \\in (-\\infty, 2)", "x < 2", True),
    ("-2, 2", "x = \\pm 2", True),
    ("1, -3", "x=1 \\text{ or } x=-3", True),
    ("(2,3)", "x=2, y=3", True),
    # matrices
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", True),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}", False),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1, 2)", True),
    # text answers
    ("\\text{Monday}", "\\text{Monday}", True),
    ("\\text{DNE}", "DNE", True),
]


@pytest.mark.parametrize(("gold", "answer", "expected"), CASES)
def test_equivalence(gold: str, answer: str, expected: bool) -> None:
    assert is_correct(f"\\boxed{{{answer}}}", gold) is expected
    assert is_correct(answer, gold) is expected


@pytest.mark.parametrize(
    ("gold", "response", "expected"),
    [
        ("B", "\\boxed{B}", True),
        ("B", "The answer is (B).", True),
        ("B", "The answer is (D).", False),
        ("(C)", "\\boxed{\\text{(C)}}", True),
        ("A", "\\boxed{\\textbf{(A)}}", True),
        ("E", "<answer>(E) 42</answer>", True),
        ("B", "\\boxed{12}", False),
        ("Yes", "\\boxed{\\text{Yes}}", True),
        ("No", "The answer is no.", True),
        ("yes", "So yes, it is possible.", True),
        ("No", "<answer>Yes</answer>", False),
    ],
)
def test_choices_and_yes_no(gold: str, response: str, expected: bool) -> None:
    assert is_correct(response, gold) is expected


# Regressions for false verdicts of math-verify 0.9.0 named in the issue.
@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("\\frac{1}{2004!}", "$\\frac{1}{2006!}$"),
        ("1/2004!", "\\boxed{1/2006!}"),
        ("1-\\frac{1}{e}", "$1+\\frac{1}{e}$"),
        ("1 - 1/e", "\\boxed{1 + 1/e}"),
        ("3x-y+13=0", "$3x+4y+14=0$"),
        ("3x - y + 13 = 0", "\\boxed{3x + 4y + 14 = 0}"),
    ],
)
def test_math_verify_false_positives(gold: str, response: str) -> None:
    assert is_correct(response, gold) is False


def test_known_bug_pairs_still_match_themselves() -> None:
    assert is_correct("\\boxed{\\frac{1}{2004!}}", "\\frac{1}{2004!}")
    assert is_correct("\\boxed{1 - e^{-1}}", "1-\\frac{1}{e}")
    assert is_correct("\\boxed{-3x + y - 13 = 0}", "3x-y+13=0")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<answer>42</answer>", "42"),
        ("<think>x = 5</think>\n<answer>x = 5</answer>", "x = 5"),
        ("so \\boxed{3} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("nested \\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{2}}{2}"),
        ("last non-empty \\boxed{7} \\boxed{}", "7"),
        ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("We add 3 and 4 to get 7 apples in total.", "7"),
        ("Final answer: -3", "-3"),
        ("\\frac{3}{4}", "\\frac{3}{4}"),
        ("<answer>The final answer is $\\frac{1}{2}$.</answer>", "\\frac{1}{2}"),
        ("no answer here at all", None),
        ("", None),
    ],
)
def test_extract_answer(response: str, expected: str | None) -> None:
    assert extract_answer(response) == expected


def test_model_style_responses() -> None:
    good = (
        "Janet has 16 eggs, eats 3 and bakes 4, so 9 remain.\n"
        "She sells them at \\$2: 9 * 2 = 18.\n\n$\\boxed{18}$"
    )
    assert is_correct(good, "18")
    assert not is_correct(good.replace("{18}", "{16}"), "18")
    assert is_correct("Step 1: 12 + 5 = 17.\n\nFinal answer: 17", "17")
    assert not is_correct("We have $2x + 3 = 11$, hence the answer is $\\boxed{2x+3=11}$.", "4")
    assert is_correct("First $\\boxed{3}$, but checking again it is $\\boxed{2}$.", "2")


def test_non_string_inputs_are_false() -> None:
    assert is_correct(None, "1") is False  # type: ignore[arg-type]
    assert is_correct("1", None) is False  # type: ignore[arg-type]
    assert is_correct(b"1", "1") is False  # type: ignore[arg-type]
    assert extract_answer(None) is None  # type: ignore[arg-type]


def test_safe_parse_builds_sympy() -> None:
    import sympy

    x = sympy.Symbol("x")
    assert safe_parse("3*x+5") == 3 * x + 5
    assert safe_parse("x^2-1") == x**2 - 1
    assert safe_parse("x**2-1") == x**2 - 1
    assert safe_parse("\\frac{1}{2}") == sympy.Rational(1, 2)
    eq = safe_parse("2x+3=11")
    assert isinstance(eq, sympy.Eq)
    assert sympy.solve(eq, x) == [4]
    assert safe_parse("\\sqrt{8}") == 2 * sympy.sqrt(2)
    assert safe_parse("5!") == 120
    assert safe_parse("x > 2") == sympy.Gt(x, 2, evaluate=False)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo hi')",
        "2^{2^{2^{2^{2^{2}}}}}",
        "100000!",
        "\\frac{" * 500,
        "(" * 5000,
        "x\x00",
        "",
    ],
)
def test_safe_parse_rejects(text: str) -> None:
    assert safe_parse(text) is None
