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


# -- whole responses: the extraction paths ------------------------------------------------
_RESPONSE_TOKENS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "Final Answer: ",
    "The final answer is ",
    ". I hope it is correct.",
    "#### ",
    "**",
    "**Answer:** ",
    "answer is ",
    " is ",
    " are ",
    " so ",
    " then ",
    " gives ",
    "\\boxed{",
    "\\boxed ",
    "}",
    "{",
    " and ",
    " or ",
    ", ",
    "; ",
    "\\quad",
    "\\text{ and }",
    "$",
    "$$",
    "\\$",
    "\\[",
    "\\]",
    "\\(",
    "\\)",
    "\n",
    "\n\n",
    ". ",
    "1,000",
    "2,5",
    ",\\!",
    "{,}",
    "x = ",
    "AB = ",
    "f(2) = ",
    ":",
    "\\\\frac",
    "\\frac{1}{2}",
    "\\begin{pmatrix}",
    "&",
    "\\\\",
    "\\end{pmatrix}",
    "_5",
    "Let me verify: ",
    "(B)",
    "Yes",
    "7",
    "-3",
    "=",
    "+",
    "\\times",
    "respectively",
    "(five)",
    "the value of ",
]


@FUZZ
@given(st.lists(st.sampled_from(_RESPONSE_TOKENS), max_size=120))
def test_response_token_soup_never_raises(tokens: list[str]) -> None:
    text = "".join(tokens)
    for response, gold in ((text, "2"), ("\\boxed{2}", text), (text, text)):
        start = time.perf_counter()
        assert isinstance(is_correct(response, gold), bool)
        assert isinstance(is_correct(response, gold, decimal_comma=False, join_boxes=False), bool)
        assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    found = extract_answer(text)
    assert found is None or isinstance(found, str)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_RESPONSE_TOKENS), st.sampled_from(_RESPONSE_TOKENS), st.integers(1_000, 40_000))
def test_long_runs_of_response_tokens_stay_fast(first: str, second: str, repeats: int) -> None:
    text = ((first + second) * repeats)[:190_000]
    for response, gold in ((text, "2"), ("\\boxed{2}", text)):
        start = time.thread_time()
        is_correct(response, gold)
        assert time.thread_time() - start < 0.5


_WORDS = "we first compute the total then check each case carefully".split()
_PROSE = st.lists(st.sampled_from(_WORDS), max_size=12)


def _sentence(words: list[str]) -> str:
    return " ".join(words).capitalize() + "." if words else ""


_FORMATS = [
    "<think>\n{prose}\n</think>\n\nThe result is $\\boxed{{{answer}}}$.",
    "{prose}\nFinal Answer: The final answer is ${answer}$. I hope it is correct.",
    "{prose}\n#### {answer}",
    "{prose}\n\n**Answer:** {answer}",
    "{prose}\n\\[\n{answer}\n\\]",
    "{prose} So the answer is $ {answer} $.",
    "{prose} Final Answer: the value we want is {answer}.",
    "<answer>{answer}</answer>",
]


@FUZZ
@given(st.sampled_from(_FORMATS), _PROSE, st.integers(-(10**6), 10**6))
def test_integer_answers_in_response_formats(template: str, words: list[str], value: int) -> None:
    response = template.format(prose=_sentence(words), answer=value)
    assert is_correct(response, str(value))
    assert not is_correct(response, str(value + 1))
    solution = f"{_sentence(words)} Hence the answer is $\\boxed{{{value}}}$."
    assert is_correct(response, solution)


@FUZZ
@given(_PROSE, st.lists(st.integers(-99, 99), min_size=2, max_size=5, unique=True))
def test_several_boxes_read_as_one_set(words: list[str], values: list[int]) -> None:
    boxes = ", ".join(f"$\\boxed{{{v}}}$" for v in values[:-1]) + f" and $\\boxed{{{values[-1]}}}$"
    response = f"{_sentence(words)} The solutions are {boxes}."
    shuffled = ", ".join(str(v) for v in reversed(values))
    assert is_correct(response, shuffled)
    assert not is_correct(response, ", ".join(str(v) for v in values[:-1]))
    assert is_correct(response, str(values[-1]), join_boxes=False)
