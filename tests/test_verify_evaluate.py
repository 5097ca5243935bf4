"""The bounded evaluator behind equivalence: exact rationals first, 60-digit numerics otherwise."""

from __future__ import annotations

import cmath
import threading
from fractions import Fraction

import pytest

from eapo_gym.verify.evaluate import Evaluator, Undefined, Unsupported, _context
from eapo_gym.verify.limits import Budget, LimitExceeded
from eapo_gym.verify.nodes import Num, free_symbols
from eapo_gym.verify.normalize import normalize
from eapo_gym.verify.parser import parse


def _vector(text: str, budget_s: float = 5.0) -> tuple:
    node = parse(normalize(text)[0], Budget(budget_s))
    return Evaluator(free_symbols([node]), Budget(budget_s)).vector(node)


def _exact(text: str) -> Fraction:
    value = _vector(text)[0]
    assert isinstance(value, Fraction), f"{text} was not evaluated exactly"
    return value


def _numeric(text: str) -> complex:
    value = _vector(text)[0]
    assert not isinstance(value, Fraction), f"{text} was evaluated exactly"
    return complex(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("\\sqrt{\\frac{9}{4}}", Fraction(3, 2)),
        ("\\sqrt[3]{-27}", Fraction(-3)),
        ("\\sqrt[3]{\\frac{8}{27}}", Fraction(2, 3)),
        ("8^{\\frac{2}{3}}", Fraction(4)),
        ("(-8)^{\\frac{1}{3}}", Fraction(-2)),
        ("(-8)^{\\frac{2}{3}}", Fraction(4)),
        ("(-1)^{\\frac{2}{3}}", Fraction(1)),
        ("(-1)^{\\frac{1}{3}}", Fraction(-1)),
        ("(-1)^{5}", Fraction(-1)),
        ("(-1)^{4}", Fraction(1)),
        ("1^{\\frac{1}{2}}", Fraction(1)),
        ("0^{2}", Fraction(0)),
        ("(\\frac{3}{2})^{2}", Fraction(9, 4)),
        ("2^{-2}", Fraction(1, 4)),
        ("\\sqrt{0}", Fraction(0)),
        ("\\sqrt{1}", Fraction(1)),
        ("|-\\frac{3}{2}|", Fraction(3, 2)),
        ("\\lfloor \\frac{7}{2} \\rfloor", Fraction(3)),
        ("\\lfloor -\\frac{7}{2} \\rfloor", Fraction(-4)),
        ("\\lceil \\frac{7}{2} \\rceil", Fraction(4)),
        ("5!", Fraction(120)),
        ("0!", Fraction(1)),
        ("\\binom{10}{3}", Fraction(120)),
        ("\\binom{5}{7}", Fraction(0)),
        ("\\binom{5}{-1}", Fraction(0)),
        ("\\binom{5}{0}", Fraction(1)),
        ("\\binom{5}{5}", Fraction(1)),
        ("\\binom{0}{0}", Fraction(1)),
        ("\\binom{20000}{19999}", Fraction(20000)),
        ("cbrt(27)", Fraction(3)),
        ("\\sqrt[1]{5}", Fraction(5)),
        ("(-1)^{1000001}", Fraction(-1)),
        ("1^{1000001}", Fraction(1)),
        ("x^{x - x}", Fraction(1)),
        ("(x - x)\\%", Fraction(0)),
        ("2^{5000} - 2^{5000} + 3", Fraction(3)),
        ("2^{3000} \\cdot 2^{-3000}", Fraction(1)),
        ("\\gcd(12, 18)", Fraction(6)),
        ("\\operatorname{lcm}(4, 6)", Fraction(12)),
        ("\\max(1, \\frac{5}{2}, 2)", Fraction(5, 2)),
        ("\\min(1, \\frac{5}{2}, 2)", Fraction(1)),
        ("\\sin 0", Fraction(0)),
        ("\\tan 0", Fraction(0)),
        ("\\arcsin 0", Fraction(0)),
        ("\\arctan 0", Fraction(0)),
        ("\\sinh 0", Fraction(0)),
        ("\\tanh 0", Fraction(0)),
        ("\\cos 0", Fraction(1)),
        ("\\exp 0", Fraction(1)),
        ("\\cosh 0", Fraction(1)),
        ("\\ln 1", Fraction(0)),
        ("\\log 1", Fraction(0)),
        ("\\lg 1", Fraction(0)),
        ("25\\%", Fraction(1, 4)),
        ("\\frac{1}{2} + \\frac{1}{3}", Fraction(5, 6)),
        ("2 \\cdot 3 \\cdot \\frac{1}{12}", Fraction(1, 2)),
    ],
)
def test_exact_values(text: str, value: Fraction) -> None:
    assert _exact(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("\\sqrt{2}", 2**0.5),
        ("(-4)^{\\frac{1}{2}}", 2j),
        ("2^{\\frac{1}{65}}", 2 ** (1 / 65)),
        ("\\sqrt[3]{2}", 2 ** (1 / 3)),
        ("\\sqrt[3]{-2}", -(2 ** (1 / 3))),
        ("cbrt(2)", 2 ** (1 / 3)),
        ("\\sqrt[2]{-4}", 2j),
        ("\\sqrt[3]{\\frac{\\pi}{8}}", (3.141592653589793 / 8) ** (1 / 3)),
        ("(\\frac{\\pi}{4})^{\\frac{1}{3}}", (3.141592653589793 / 4) ** (1 / 3)),
        ("(0\\pi)^{\\frac{1}{2}}", 0),
        ("\\sin(500000)", 0.1778312015182589),
        ("\\cos(500000)", -0.9840610061203382),
        ("\\tan(500000)", -0.1807115619989442),
        ("\\cot(500000)", -5.533680241255634),
        ("\\sec(500000)", -1.016197160318852),
        ("\\csc(500000)", 5.623310147276515),
        ("\\sqrt[\\pi]{2}", 2 ** (1 / 3.141592653589793)),
        ("(-\\pi^{3})^{\\frac{1}{3}}", -3.141592653589793),
        ("(-\\pi^{3})^{\\frac{2}{3}}", 3.141592653589793**2),
        ("\\pi^{3}", 3.141592653589793**3),
        ("\\pi^{\\pi}", 36.46215960720791),
        ("0^{\\pi}", 0),
        ("e", 2.718281828459045),
        ("i^{2}", -1),
        ("\\sin \\frac{\\pi}{6}", 0.5),
        ("\\cos \\frac{\\pi}{3}", 0.5),
        ("\\tan \\frac{\\pi}{4}", 1),
        ("\\cot \\frac{\\pi}{8}", 2.414213562373095),
        ("\\sec \\frac{\\pi}{3}", 2),
        ("\\csc \\frac{\\pi}{6}", 2),
        ("\\sinh 1", 1.1752011936438014),
        ("\\cosh 1", 1.5430806348152437),
        ("\\tanh 1", 0.7615941559557649),
        ("\\exp 1", 2.718281828459045),
        ("\\arcsin \\frac{1}{2}", 0.5235987755982989),
        ("\\arccos \\frac{1}{2}", 1.0471975511965979),
        ("\\arctan 2", 1.1071487177940904),
        ("\\operatorname{arccot} 2", 0.4636476090008061),
        ("\\ln 2", 0.6931471805599453),
        ("\\log 2", 0.6931471805599453),
        ("\\log_{2} 8", 3),
        ("\\lg 200", 2.3010299956639813),
        ("|-\\pi|", 3.141592653589793),
        ("\\lfloor \\pi \\rfloor", 3),
        ("\\lceil \\pi \\rceil", 4),
        ("(\\frac{1}{2})!", 0.886226925452758),
        ("\\binom{\\pi}{2}", 3.141592653589793 * 2.141592653589793 / 2),
        ("\\binom{-1}{2}", 1),
        ("\\max(\\pi, e)", 3.141592653589793),
        ("\\min(\\pi, e)", 2.718281828459045),
        ("\\sqrt{2}\\%", 0.01414213562373095),
        ("30^\\circ", 0.5235987755982988),
        ("2^{1000000}", None),
    ],
)
def test_numeric_values(text: str, value: complex | None) -> None:
    result = _numeric(text)
    if value is not None:
        assert abs(result - value) <= 1e-12 * max(1, abs(value))


@pytest.mark.parametrize(
    "text",
    ["\\frac{1}{0}", "0^{0}", "0^{-1}", "0^{-\\pi}", "\\sqrt[0]{5}", "(-1)!"]
    + ["\\ln 0", "\\ln(0 \\pi)", "\\cot 0", "(0\\pi)^{0}"],
)
def test_undefined_values(text: str) -> None:
    with pytest.raises(Undefined):
        _vector(text)


@pytest.mark.parametrize("text", ["\\infty", "\\pi + \\infty", "\\gcd(\\frac{1}{2}, 3)", "(1, 2) + 1"])
def test_values_that_do_not_exist(text: str) -> None:
    with pytest.raises(Unsupported):
        _vector(text)


@pytest.mark.parametrize(
    "text",
    [
        "10001!",
        "(10000.5)!",
        "\\binom{2000000}{3}",
        "\\sin(10^{7})",
        "\\sin(10^{6} i)",
        "\\sinh(10^{6})",
        "\\exp(10^{6})",
        "\\pi^{10^{6}}",
        "2^{10^{7} i}",
        "2^{2000000}",
        "2^{700000} \\cdot 2^{700000} \\cdot \\pi",
    ],
)
def test_magnitudes_are_capped(text: str) -> None:
    with pytest.raises(LimitExceeded):
        _vector(text)


def test_big_exact_products_fall_back_to_numerics() -> None:
    assert abs(_numeric("2^{100000} \\cdot 2^{100000} \\cdot 2^{-199999}") - 2) < 1e-12
    assert abs(_numeric("2^{100000} + 2^{100000} - 2^{100001} + 2^{-60}") - 0) < 1e-10


def test_the_cpu_budget_stops_long_evaluations() -> None:
    long_sum = " + ".join(["1"] * 200)
    assert _exact(long_sum) == 200
    with pytest.raises(LimitExceeded):
        _vector(long_sum, budget_s=0.0)


def test_points_are_shared_random_rationals() -> None:
    evaluator = Evaluator({"x", "y"}, Budget())
    assert len(evaluator.points) == 4
    assert len({p["x"] for p in evaluator.points}) == 4
    for point in evaluator.points:
        assert set(point) == {"x", "y"}
        assert all(Fraction(1, 3) - Fraction(1, 10_000) < v < 3 for v in point.values())
    assert Evaluator(set(), Budget()).points == [{}]


def test_variables_evaluate_at_every_point() -> None:
    node = parse("x^2 + 1", Budget())
    evaluator = Evaluator({"x"}, Budget())
    values = evaluator.vector(node)
    assert values == tuple(p["x"] ** 2 + 1 for p in evaluator.points)
    assert evaluator.vector(node) is values


@pytest.mark.parametrize(
    ("text", "function"),
    [
        ("x^{\\pi}", lambda x: x**cmath.pi),
        ("\\pi^{x}", lambda x: cmath.pi**x),
        ("(\\pi x)^{x}", lambda x: (cmath.pi * x) ** x),
        ("2^{\\pi x}", lambda x: 2 ** (cmath.pi * x)),
        ("(\\pi x)\\%", lambda x: cmath.pi * x / 100),
        ("(\\pi x)^\\circ", lambda x: cmath.pi**2 * x / 180),
        ("\\sqrt[x]{\\pi}", lambda x: cmath.pi ** (1 / x)),
        ("\\sin(\\pi x) + x", lambda x: cmath.sin(cmath.pi * x) + x),
    ],
)
def test_variables_inside_numeric_values(text: str, function) -> None:
    node = parse(normalize(text)[0], Budget())
    evaluator = Evaluator({"x"}, Budget())
    for point, value in zip(evaluator.points, evaluator.vector(node), strict=True):
        expected = function(float(point["x"]))
        assert abs(complex(value) - expected) <= 1e-9 * max(1, abs(expected))


def test_close_is_exact_for_rationals_and_relative_for_numerics() -> None:
    ev = Evaluator(set(), Budget())
    mpf = ev.ctx.mpf
    assert ev.close(Fraction(1, 3), Fraction(1, 3))
    assert not ev.close(Fraction(1, 3), Fraction(1, 3) + Fraction(1, 10**40))
    assert ev.close(mpf(1), mpf(1) + mpf(10) ** -40)
    assert not ev.close(mpf(1), mpf(1) + mpf(10) ** -25)
    assert ev.close(mpf(10) ** 40, mpf(10) ** 40 + 1)
    assert not ev.close(mpf(10) ** 40, mpf(10) ** 40 * (1 + mpf(10) ** -25))
    assert ev.close(mpf(10) ** -50, 0)
    assert not ev.close(ev.ctx.exp(-100), 0)
    assert ev.close(Fraction(1, 2), mpf(1) / 2)
    assert ev.close(Fraction(1, 3), mpf(1) / 3)
    assert not ev.close(Fraction(1, 2), mpf(1) / 3)


def test_ratio_and_sign() -> None:
    ev = Evaluator(set(), Budget())
    assert abs(complex(ev.ratio(Fraction(1), Fraction(4))) - 0.25) < 1e-15
    assert ev.is_positive(Fraction(1, 7))
    assert not ev.is_positive(Fraction(-1, 7))
    assert not ev.is_positive(Fraction(0))
    assert ev.is_positive(ev.ctx.mpf(2))
    assert not ev.is_positive(ev.ctx.mpf(-2))
    assert not ev.is_positive(ev.ctx.mpc(2, 1))
    assert ev.is_positive(ev.ctx.mpc(2, ev.ctx.mpf(10) ** -40))
    assert ev.is_positive(ev.ctx.mpc(100, ev.ctx.mpf(10) ** -29))
    assert not ev.is_positive(ev.ctx.mpc(ev.ctx.mpf(1) / 2, ev.ctx.mpf(15) / 10**31))
    assert ev.is_positive(ev.ctx.mpf(1) / 2)
    assert not ev.is_positive(ev.ctx.mpf(0))


def test_rounds_to_a_decimal() -> None:
    ev = Evaluator(set(), Budget())
    root2 = ev.ctx.sqrt(2)
    assert ev.rounds_to(root2, Num(Fraction(1414, 1000), places=3))
    assert ev.rounds_to(root2, Num(Fraction(14142, 10000), places=4))
    assert not ev.rounds_to(root2, Num(Fraction(1415, 1000), places=3))
    assert not ev.rounds_to(root2, Num(Fraction(1413, 1000), places=3))
    assert ev.rounds_to(ev.ctx.mpf("1.0005"), Num(Fraction(1, 1), places=3))
    assert not ev.rounds_to(ev.ctx.mpf("1.000500001"), Num(Fraction(1, 1), places=3))
    assert not ev.rounds_to(ev.ctx.mpc(root2, 1), Num(Fraction(1414, 1000), places=3))
    assert ev.rounds_to(
        ev.ctx.mpc(1000 * root2, ev.ctx.mpf(10) ** -28), Num(Fraction(1414214, 1000), places=3)
    )
    half = ev.ctx.mpf(1) / 2
    assert not ev.rounds_to(ev.ctx.mpc(half, ev.ctx.mpf(15) / 10**31), Num(Fraction(1, 2), places=3))


def test_each_thread_has_its_own_60_digit_context() -> None:
    here = _context()
    assert _context() is here
    other: list = []
    thread = threading.Thread(target=lambda: other.append(_context()))
    thread.start()
    thread.join()
    assert other[0] is not here
    assert abs(here.sqrt(2) ** 2 - 2) < here.mpf(10) ** -55
