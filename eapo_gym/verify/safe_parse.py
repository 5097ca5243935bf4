"""Bounded conversion of plain or LaTeX maths to sympy objects, without ``eval``.

The text goes through the whitelist parser in :mod:`.parser`; the node tree is evaluated once
at a random point under the same caps as the verifier (so a power tower or a huge factorial
is rejected before sympy sees it) and then built with sympy constructors directly. sympy's
``sympify``/``parse_expr`` are never called. sympy's own automatic evaluation cannot be
interrupted (``sqrt`` of a 4096-bit integer factors it for seconds), so a function or a
fractional power applied to a constant above 256 bits is rejected too.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from .equivalence import expand_pm
from .evaluate import Evaluator, NotExact, Undefined, Unsupported
from .limits import MAX_ANSWER_CHARS, Budget, LimitExceeded, clean_text
from .nodes import (
    Add,
    Const,
    Degree,
    Func,
    Interval,
    Matrix,
    Mul,
    Node,
    Num,
    Percent,
    Pow,
    Rel,
    Seq,
    Sym,
    Union,
    children,
    free_symbols,
)
from .normalize import normalize
from .parser import parse

if TYPE_CHECKING:
    import sympy

_MAX_SYMPY_ARG_BITS = 256
_MAX_CONSTANT_BITS = 12_000
_INTEGER_FUNCS = frozenset({"factorial", "binom", "gcd", "lcm", "abs"})


def safe_parse(text: str, *, cpu_budget_s: float = 0.5) -> sympy.Basic | None:
    """Parse ``text`` (e.g. ``3*x+5``, ``x^2-1``, ``\\frac{1}{2}``, ``2x+3=11``) into sympy, or None.

    Equations become ``sympy.Eq`` (unevaluated), inequalities the matching relational, lists
    ``Tuple``/``FiniteSet``, intervals ``Interval`` and matrices ``ImmutableMatrix``. Never
    raises. The first call imports sympy (a few hundred milliseconds, once per process).
    """
    try:
        clean = clean_text(text, MAX_ANSWER_CHARS)
        if clean is None:
            return None
        budget = Budget(cpu_budget_s)
        node = expand_pm(parse(normalize(clean)[0], budget))
        _check_bounds(node, budget)
        return _ToSympy(budget).build(node)
    except Exception:
        return None


def _check_bounds(node: Node, budget: Budget) -> None:
    """Evaluate every scalar subtree once so oversized values raise LimitExceeded.

    A constant result must also stay below ``_MAX_CONSTANT_BITS`` (about 3,600 digits), so
    callers can print it (Python refuses ``str()`` of integers above 4,300 digits).
    """
    evaluator = Evaluator(free_symbols([node]), budget)
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, (Seq, Rel, Union, Interval, Matrix)):
            stack.extend(children(cur))
            continue
        try:
            value = evaluator.vector(cur)[0]
        except (Unsupported, Undefined, NotExact):
            continue
        if free_symbols([cur]):
            continue
        if isinstance(value, Fraction):
            big = _bits(value) > _MAX_CONSTANT_BITS
        else:
            big = bool(value) and abs(evaluator.ctx.mag(value)) > _MAX_CONSTANT_BITS
        if big:
            raise LimitExceeded("constant too large")


class _ToSympy:
    def __init__(self, budget: Budget) -> None:
        import sympy

        self.sp = sympy
        self.budget = budget
        self.constants = Evaluator(set(), budget)
        self._funcs = {
            "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
            "csc": sympy.csc, "asin": sympy.asin, "acos": sympy.acos, "atan": sympy.atan,
            "acot": sympy.acot, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
            "ln": sympy.log, "exp": sympy.exp, "sqrt": sympy.sqrt, "cbrt": sympy.cbrt,
            "abs": sympy.Abs, "floor": sympy.floor, "ceil": sympy.ceiling, "factorial": sympy.factorial,
            "binom": sympy.binomial, "max": sympy.Max, "min": sympy.Min,
        }  # fmt: skip

    def build(self, node: Node):
        self.budget.check()
        sp = self.sp
        if isinstance(node, Num):
            return sp.Rational(node.value.numerator, node.value.denominator)
        if isinstance(node, Sym):
            return sp.Symbol(node.name)
        if isinstance(node, Const):
            return {"pi": sp.pi, "e": sp.E, "i": sp.I, "oo": sp.oo}[node.name]
        if isinstance(node, Add):
            return sp.Add(*[self.build(a) for a in node.args])
        if isinstance(node, Mul):
            return sp.Mul(*[self.build(a) for a in node.args])
        if isinstance(node, Pow):
            return self._pow(node)
        if isinstance(node, Func):
            return self._func(node)
        if isinstance(node, Percent):
            return self.build(node.arg) / 100
        if isinstance(node, Degree):
            return self.build(node.arg) * sp.pi / 180
        if isinstance(node, Rel):
            return self._rel(node)
        if isinstance(node, Seq):
            items = [self.build(i) for i in node.items]
            return sp.Tuple(*items) if node.kind in ("tuple", "list") else sp.FiniteSet(*items)
        if isinstance(node, Interval):
            return sp.Interval(self.build(node.lo), self.build(node.hi), node.lopen, node.ropen)
        if isinstance(node, Union):
            return sp.Union(*[self.build(p) for p in node.parts])
        if isinstance(node, Matrix):
            return sp.ImmutableMatrix([[self.build(c) for c in row] for row in node.rows])
        raise Unsupported(type(node).__name__)

    def _guard(self, node: Node) -> None:
        """Reject a large constant before sympy's uninterruptible automatic evaluation sees it."""
        if free_symbols([node]):
            return
        try:
            value = self.constants.vector(node)[0]
        except (Unsupported, Undefined):
            return
        if isinstance(value, Fraction):
            big = _bits(value) > _MAX_SYMPY_ARG_BITS
        else:
            big = bool(value) and self.constants.ctx.mag(value) > _MAX_SYMPY_ARG_BITS
        if big:
            raise LimitExceeded("constant too large for sympy")

    def _pow(self, node: Pow):
        exp = node.exp
        if not (isinstance(exp, Num) and exp.value.denominator == 1):
            self._guard(node.base)
        return self.sp.Pow(self.build(node.base), self.build(exp))

    def _func(self, node: Func):
        sp = self.sp
        if node.name not in _INTEGER_FUNCS:
            for arg in node.args:
                self._guard(arg)
        args = [self.build(a) for a in node.args]
        if node.name == "root":
            return sp.root(args[0], args[1])
        if node.name in ("log", "log10"):
            base = args[1] if len(args) == 2 else (10 if node.name == "log10" else None)
            return sp.log(args[0]) if base is None else sp.log(args[0], base)
        if node.name in ("gcd", "lcm"):
            return (sp.gcd if node.name == "gcd" else sp.lcm)(*args)
        return self._funcs[node.name](*args)

    def _rel(self, node: Rel):
        sp = self.sp
        classes = {"=": sp.Eq, "!=": sp.Ne, "<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}
        sides = [self.build(s) for s in node.sides]
        rels = []
        for op, lhs, rhs in zip(node.ops, sides, sides[1:], strict=False):
            if op == "in":
                rels.append(sp.Contains(lhs, rhs, evaluate=False))
            else:
                rels.append(classes[op](lhs, rhs, evaluate=False))
        return rels[0] if len(rels) == 1 else sp.And(*rels, evaluate=False)


def _bits(value: Fraction) -> int:
    return max(value.numerator.bit_length(), value.denominator.bit_length())
