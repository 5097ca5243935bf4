"""The public verdict: is the final answer in a response equal to the gold answer?"""

from __future__ import annotations

import re
from fractions import Fraction

from .choice import gold_choice, gold_yes_no, response_choice, response_yes_no
from .equivalence import equivalent
from .extract import find_answer
from .limits import DEFAULT_CPU_BUDGET_S, MAX_ANSWER_CHARS, MAX_RESPONSE_CHARS, Budget, clean_text
from .nodes import Text
from .normalize import normalize, strip_outer, text_key
from .parser import ParseError, parse

_SIMPLE = re.compile(
    r"(-?)(\d{1,300})(?:\.(\d{1,300}))?|(-?)(\d{1,300})/(\d{1,300})|(-?)\\frac\{(\d{1,300})\}\{(\d{1,300})\}"
)
_TEXT_ANSWER = re.compile(r"[a-z0-9(][a-z0-9 ,.:'()\-]*")
_GROUPED = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def is_correct(response: str, gold: str, *, cpu_budget_s: float = DEFAULT_CPU_BUDGET_S) -> bool:
    """True when the final answer in ``response`` is mathematically equal to ``gold``.

    Never raises and never evaluates the text as code; hostile or oversized input, or work that
    exceeds ``cpu_budget_s`` of this thread's CPU time, gives False.
    """
    try:
        return _judge(response, gold, Budget(cpu_budget_s))
    except Exception:
        return False


def _judge(response: str, gold: str, budget: Budget) -> bool:
    gold_text = clean_text(gold, MAX_ANSWER_CHARS)
    if gold_text is None or clean_text(response, MAX_RESPONSE_CHARS) is None:
        return False
    gold_text = strip_outer(gold_text)
    if not gold_text:
        return False
    letter = gold_choice(gold_text)
    if letter is not None:
        return response_choice(response) == letter
    yes_no = gold_yes_no(gold_text)
    if yes_no is not None:
        return response_yes_no(response) == yes_no
    found = find_answer(response)
    if found is None:
        return False
    answer = found[0]
    quick = _quick(gold_text, answer)
    if quick is not None:
        return quick
    return _compare(gold_text, answer, budget)


def _simple_value(text: str) -> tuple[Fraction, bool] | None:
    """``(value, is_decimal)`` for a plain integer, decimal or fraction, else None."""
    text = text.strip().strip("$").strip().replace("\u2212", "-")
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    m = _SIMPLE.fullmatch(text)
    if m is None:
        return None
    sign_a, whole, frac, sign_b, num_b, den_b, sign_c, num_c, den_c = m.groups()
    if whole is not None:
        value = Fraction(int(whole)) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        return (-value if sign_a else value), frac is not None
    num, den, sign = (num_b, den_b, sign_b) if num_b is not None else (num_c, den_c, sign_c)
    if int(den) == 0:
        return None
    value = Fraction(int(num), int(den))
    return (-value if sign else value), False


def _quick(gold: str, answer: str) -> bool | None:
    """Decide plain-number pairs without parsing; None when the full path is needed."""
    g, a = _simple_value(gold), _simple_value(answer)
    if g is None or a is None:
        return None
    if g[0] == a[0]:
        return True
    return None if g[1] != a[1] else False


def _compare(gold: str, answer: str, budget: Budget) -> bool:
    gold_norm, gold_unit = normalize(gold)
    answer_norm, answer_unit = normalize(answer)
    if gold_unit and answer_unit and gold_unit != answer_unit:
        return False
    try:
        g = parse(gold_norm, budget)
        a = parse(answer_norm, budget)
    except ParseError:
        return _same_text(gold_norm, answer_norm)
    if isinstance(g, Text) or isinstance(a, Text):
        return _same_text(gold_norm, answer_norm)
    return equivalent(g, a, budget)


def _same_text(gold: str, answer: str) -> bool:
    key = text_key(gold)
    return _TEXT_ANSWER.fullmatch(key) is not None and key == text_key(answer)
