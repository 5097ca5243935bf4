"""The public verdict: is the final answer in a response equal to the gold answer?"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

from .choice import gold_choice, gold_yes_no, response_choice, response_yes_no
from .equivalence import APPROX_DIGITS, equivalent
from .extract import find_answer, has_math_delimiters
from .limits import DEFAULT_CPU_BUDGET_S, MAX_ANSWER_CHARS, MAX_RESPONSE_CHARS, Budget, clean_text
from .nodes import Node, Seq, Text
from .normalize import normalize, strip_outer, text_key
from .parser import ParseError, parse

_SIMPLE = re.compile(
    r"(-?)(\d{1,300})(?:\.(\d{1,300}))?|(-?)(\d{1,300})/(\d{1,300})|(-?)\\frac\{(\d{1,300})\}\{(\d{1,300})\}"
)
_TEXT_ANSWER = re.compile(r"[a-z0-9(][a-z0-9 ,.:'()\-]*")
_GROUPED = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_COMMA_DECIMAL = re.compile(r"-?\d+,\d+")


def is_correct(
    response: str,
    gold: str,
    *,
    cpu_budget_s: float = DEFAULT_CPU_BUDGET_S,
    decimal_comma: bool = True,
    join_boxes: bool = True,
    approx_digits: int | None = APPROX_DIGITS,
) -> bool:
    """True when the final answer in ``response`` is mathematically equal to the answer in ``gold``.

    ``gold`` is a bare answer or a whole reference solution; its answer is extracted like the
    response's. Exact rationals compare exactly. Conventions: ``decimal_comma`` reads ``1,22`` as
    1.22 when the other answer is a single number and the comma does not group thousands;
    ``join_boxes`` reads adjacent boxed answers as one list; ``approx_digits`` is the least number
    of significant digits with which a predicted decimal may stand for an irrational gold it rounds
    to (None: decimals never approximate). Never raises and never evaluates the text as code;
    hostile or oversized input, or work beyond ``cpu_budget_s`` of this thread's CPU time, is False.
    """
    try:
        conventions = _Conventions(decimal_comma, join_boxes, approx_digits)
        return _judge(response, gold, Budget(cpu_budget_s), conventions)
    except Exception:
        return False


class _Conventions(NamedTuple):
    """The options of ``is_correct`` that choose between conventions."""

    decimal_comma: bool
    join_boxes: bool
    approx_digits: int | None


def _judge(response: str, gold: str, budget: Budget, conventions: _Conventions) -> bool:
    join_boxes = conventions.join_boxes
    if clean_text(response, MAX_RESPONSE_CHARS) is None:
        return False
    gold_text = gold_answer(gold, join_boxes=join_boxes)
    if gold_text is None:
        return False
    found = find_answer(response, join_boxes=join_boxes)
    letter = gold_choice(gold_text)
    if letter is not None:
        return response_choice(response, found) == letter
    yes_no = gold_yes_no(gold_text)
    if yes_no is not None:
        return response_yes_no(response, found) == yes_no
    if found is None:
        return False
    answer = found[0]
    quick = _quick(gold_text, answer)
    if quick is not None:
        return quick
    return _compare(gold_text, answer, budget, conventions)


def gold_answer(gold: str, *, join_boxes: bool = True) -> str | None:
    """The answer in ``gold``: extracted like a response's, or the whole text when it has no markers."""
    text = clean_text(gold, MAX_RESPONSE_CHARS)
    if text is None:
        return None
    found = find_answer(text, join_boxes=join_boxes)
    if found is None or (found[1] == "last" and not has_math_delimiters(text)):
        text = strip_outer(text)
        return text if text and len(text) <= MAX_ANSWER_CHARS else None
    return found[0]


def _simple_value(text: str) -> Fraction | None:
    """The value of a plain integer, decimal or fraction, else None."""
    text = text.strip().strip("$").strip().replace("\u2212", "-")
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    m = _SIMPLE.fullmatch(text)
    if m is None:
        return None
    sign_a, whole, frac, sign_b, num_b, den_b, sign_c, num_c, den_c = m.groups()
    if whole is not None:
        value = Fraction(int(whole)) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        return -value if sign_a else value
    num, den, sign = (num_b, den_b, sign_b) if num_b is not None else (num_c, den_c, sign_c)
    if int(den) == 0:
        return None
    value = Fraction(int(num), int(den))
    return -value if sign else value


def _quick(gold: str, answer: str) -> bool | None:
    """Decide pairs of plain numbers (all exact rationals) without parsing; None otherwise."""
    g, a = _simple_value(gold), _simple_value(answer)
    if g is None or a is None:
        return None
    return g == a


def _decimal_comma(text: str, node: Node, other: Node, budget: Budget) -> Node:
    """``1,22`` read as 1.22 when the comma does not group thousands and ``other`` is not a list."""
    if isinstance(other, Seq) or not _COMMA_DECIMAL.fullmatch(text) or _GROUPED.fullmatch(text):
        return node
    return parse(text.replace(",", "."), budget)


def _compare(gold: str, answer: str, budget: Budget, conventions: _Conventions) -> bool:
    gold_norm, gold_unit = normalize(gold)
    answer_norm, answer_unit = normalize(answer)
    if gold_unit and answer_unit and gold_unit != answer_unit:
        return False
    try:
        g = parse(gold_norm, budget)
        a = parse(answer_norm, budget)
    except ParseError:
        return _same_text(gold_norm, answer_norm)
    if conventions.decimal_comma:
        g, a = _decimal_comma(gold_norm, g, a, budget), _decimal_comma(answer_norm, a, g, budget)
    if isinstance(g, Text) or isinstance(a, Text):
        return _same_text(gold_norm, answer_norm)
    return equivalent(g, a, budget, conventions.approx_digits)


def _same_text(gold: str, answer: str) -> bool:
    key = text_key(gold)
    return _TEXT_ANSWER.fullmatch(key) is not None and key == text_key(answer)
