"""The symbolic expert: solves equations and evaluates expressions with sympy, safely."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sympy

from eapo_gym.experts.base import BaseExpert, ExpertQuery
from eapo_gym.verify import safe_parse

# Runs of math characters: numbers, single-letter variables, operators, brackets.
_MATH_RUN = re.compile(r"(?:\d+(?:\.\d+)?|(?<![A-Za-z])[a-z](?![A-Za-z])|[-+*/^()=.]|\s)+")
_MAX_EXPRESSION_CHARS = 200
_MAX_DEGREE = 4


class SymbolicExpert(BaseExpert):
    """Answers the sub-question the policy wrote: solves a one-variable equation or evaluates arithmetic.

    "What is 37+48?" gets "37+48 = 85": the policy decides what to ask, the
    expert computes it. A query without math is declined, unless
    ``solve_problem=True``, which then solves the problem statement itself (and
    hands over the answer). Text goes through ``eapo_gym.verify.safe_parse`` (no
    ``eval``); expressions longer than 200 characters or of degree above 4 are
    declined, which bounds sympy's work.
    """

    def __init__(self, solve_problem: bool = False, name: str = "symbolic") -> None:
        self.solve_problem = solve_problem
        self.name = name
        self.declined_reply = "Ask me a calculation, e.g. What is 37+48?"

    def consult(self, queries: Sequence[ExpertQuery]) -> list[str]:
        return [self._answer(query) for query in queries]

    def _answer(self, query: ExpertQuery) -> str:
        for text in (query.text, query.problem.question) if self.solve_problem else (query.text,):
            reply = solve_text(text)
            if reply is not None:
                return reply
        return self.declined_reply


def math_candidates(text: str) -> list[str]:
    """Math-looking substrings of ``text`` that contain a digit and an operator, longest first."""
    runs = (match.group().strip(" .") for match in _MATH_RUN.finditer(text))
    found = [run for run in runs if re.search(r"\d", run) and re.search(r"[-+*/^=]", run)]
    return sorted(found, key=len, reverse=True)


def solve_text(text: str) -> str | None:
    """A one-line result for the first candidate that parses, else ``None``."""
    for candidate in math_candidates(text):
        if len(candidate) > _MAX_EXPRESSION_CHARS:
            continue
        parsed = safe_parse(candidate)
        reply = _describe(candidate, parsed) if parsed is not None else None
        if reply is not None:
            return reply
    return None


def _describe(source: str, parsed: sympy.Basic) -> str | None:
    if isinstance(parsed, sympy.Equality):
        expression = parsed.lhs - parsed.rhs
        symbols = sorted(expression.free_symbols, key=str)
        if len(symbols) != 1 or not _low_degree(expression, symbols[0]):
            return None
        solutions = sympy.solve(expression, symbols[0])
        if not solutions:
            return f"{source} has no solution."
        values = ", ".join(str(s) for s in solutions)
        return f"{symbols[0]} = {values}"
    if not isinstance(parsed, sympy.Expr):
        return None
    if parsed.free_symbols:
        if not all(_low_degree(parsed, s) for s in parsed.free_symbols):
            return None
        return f"{source} = {sympy.factor(parsed)}"
    return f"{source} = {sympy.nsimplify(parsed)}"


def _low_degree(expression: sympy.Expr, symbol: sympy.Symbol) -> bool:
    try:
        return sympy.Poly(expression, symbol).degree() <= _MAX_DEGREE
    except sympy.PolynomialError:
        return False
