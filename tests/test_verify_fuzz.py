"""Property tests for eapo_gym.verify over random, adversarial and well-formed answers."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eapo_gym.verify import extract_answer, is_correct, safe_parse

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TOKENS = [
    "\\frac{",
    "\\sqrt{",
    "\\sqrt[",
    "^{",
    "_{",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "\\{",
    "\\}",
    "|",
    "!",
    "^",
    "**",
    "\\boxed{",
    "<answer>",
    "</answer>",
    "$",
    "\\(",
    "\\)",
    "\\left(",
    "\\right)",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "&",
    "\\\\",
    "\\pm",
    "\\cdot",
    "\\times",
    "\\div",
    "\\infty",
    "\\pi",
    "e",
    "i",
    "x",
    "y",
    "=",
    "<",
    "\\le",
    "\\cup",
    ",",
    ";",
    ".",
    "...",
    "\\overline{",
    "%",
    "\\%",
    "^\\circ",
    "\\text{",
    " or ",
    "9",
    "99",
    "0",
    "1",
    "-",
    "+",
    "/",
    "\\binom{",
    "\\log_",
    "\\sin",
    "e9",
    "1e999",
    "\x00",
    "\u2212",
    "\u00b2",
    "\u221e",
    " ",
    "\n",
]


def _bounded(fn, *args) -> None:
    start = time.perf_counter()
    fn(*args)
    assert time.perf_counter() - start < 1.0


@FUZZ
@given(st.text(max_size=300))
def test_random_text_never_raises(text: str) -> None:
    _bounded(is_correct, text, "1")
    _bounded(is_correct, "\\boxed{1}", text)
    _bounded(is_correct, text, text)
    _bounded(extract_answer, text)
    _bounded(safe_parse, text)


@FUZZ
@given(st.lists(st.sampled_from(_TOKENS), max_size=80))
def test_adversarial_token_soup_never_raises(tokens: list[str]) -> None:
    text = "".join(tokens)
    for response, gold in ((text, "2"), (f"\\boxed{{{text}}}", text), ("\\boxed{2}", text)):
        start = time.perf_counter()
        assert isinstance(is_correct(response, gold), bool)
        assert time.perf_counter() - start < 1.0
    _bounded(safe_parse, text)


_ints = st.integers(min_value=-(10**6), max_value=10**6)
_small = st.integers(min_value=1, max_value=999)
_var = st.sampled_from(["x", "y", "n", "t", "a"])


@st.composite
def _atoms(draw) -> str:
    kind = draw(st.sampled_from(["int", "dec", "frac", "latexfrac", "sqrt", "pi", "var", "pow"]))
    if kind == "int":
        return str(draw(_ints))
    if kind == "dec":
        return f"{draw(_ints)}.{draw(st.integers(0, 999)):03d}"
    if kind == "frac":
        return f"{draw(_ints)}/{draw(_small)}"
    if kind == "latexfrac":
        return f"\\frac{{{draw(_ints)}}}{{{draw(_small)}}}"
    if kind == "sqrt":
        return f"{draw(_small)}\\sqrt{{{draw(_small)}}}"
    if kind == "pi":
        return f"\\frac{{{draw(_small)}\\pi}}{{{draw(_small)}}}"
    if kind == "var":
        return f"{draw(_small)}{draw(_var)}"
    return f"{draw(_var)}^{{{draw(st.integers(0, 12))}}}"


@st.composite
def well_formed(draw) -> str:
    shape = draw(
        st.sampled_from(["atom", "sum", "product", "set", "tuple", "interval", "equation", "matrix"])
    )
    if shape == "atom":
        return draw(_atoms())
    parts = draw(st.lists(_atoms(), min_size=2, max_size=4))
    if shape == "sum":
        return " + ".join(parts)
    if shape == "product":
        return " \\cdot ".join(f"({p})" for p in parts)
    if shape == "set":
        return "\\{" + ", ".join(parts) + "\\}"
    if shape == "tuple":
        return "(" + ", ".join(parts) + ")"
    if shape == "interval":
        lo, hi = sorted(draw(st.lists(_ints, min_size=2, max_size=2, unique=True)))
        return f"{draw(st.sampled_from('(['))}{lo}, {hi}{draw(st.sampled_from(')]'))}"
    if shape == "equation":
        return f"{parts[0]} = {parts[1]}"
    return "\\begin{pmatrix}" + " & ".join(parts[:2]) + " \\\\ " + " & ".join(parts[-2:]) + "\\end{pmatrix}"


@FUZZ
@given(well_formed())
def test_well_formed_answer_matches_itself(answer: str) -> None:
    assert is_correct(answer, answer)
    assert is_correct(f"\\boxed{{{answer}}}", answer)
    assert is_correct(f"Reasoning first.\n<answer>{answer}</answer>", answer)


@FUZZ
@given(_ints, _ints)
def test_integers_compare_exactly(a: int, b: int) -> None:
    assert is_correct(f"The answer is {a:,}.", str(b)) is (a == b)
    assert is_correct(f"\\boxed{{{a}}}", f"{b}") is (a == b)
