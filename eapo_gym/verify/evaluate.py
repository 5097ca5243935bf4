"""Bounded evaluation of scalar node trees, exactly over the rationals or numerically with mpmath.

Free variables are replaced by random rational points shared by both answers, so two
expressions are compared by their values (Schwartz-Zippel style identity testing). Exact
arithmetic is tried first; anything irrational falls back to 60-digit complex arithmetic in a
thread-local mpmath context. All magnitudes are capped before the work is done.
"""

from __future__ import annotations

import math
import random
import threading
from fractions import Fraction

import mpmath

from .limits import MAX_FACTORIAL, MAX_INT_BITS, MAX_MAG_BITS, MAX_TRIG_ARG, Budget, LimitExceeded
from .nodes import Add, Const, Degree, Func, Mul, Node, Num, Percent, Pow, Sym


class NotExact(Exception):
    """The value is not a rational number of bounded size."""


class Unsupported(Exception):
    """The tree contains something that has no scalar value."""


class Undefined(Exception):
    """The value is undefined (division by zero, log of zero, a pole)."""


DPS = 60
TOLERANCE_EXP = -30
FLOOR_EXP = -48
N_POINTS = 4
_local = threading.local()


def _context() -> mpmath.ctx_mp.MPContext:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = mpmath.MPContext()
        ctx.dps = DPS
        _local.ctx = ctx
    return ctx


def _iroot(n: int, k: int) -> int | None:
    """Exact integer k-th root of n >= 0, or None."""
    if n < 2:
        return n
    x = 1 << -(-n.bit_length() // k)
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            break
        x = y
    return x if x**k == n else None


def _bits(q: Fraction) -> int:
    return max(q.numerator.bit_length(), q.denominator.bit_length())


class Evaluator:
    """Evaluates scalar trees at shared random points for the given variable names."""

    def __init__(self, names: set[str], budget: Budget) -> None:
        rng = random.Random()
        count = N_POINTS if names else 1
        self.points: list[dict[str, Fraction]] = []
        for _ in range(count):
            point = {}
            for name in sorted(names):
                den = rng.randrange(10_007, 99_991)
                point[name] = Fraction(rng.randrange(den // 3, 3 * den), den)
            self.points.append(point)
        self.budget = budget
        self.ctx = _context()
        self.tol = self.ctx.mpf(10) ** TOLERANCE_EXP
        self.floor = self.ctx.mpf(10) ** FLOOR_EXP
        self._steps = 0
        self._cache: dict[int, tuple] = {}

    # -- public -------------------------------------------------------------------------
    def vector(self, node: Node) -> tuple:
        """Values of ``node`` at every point: all Fractions if exact, else all mpc."""
        key = id(node)
        if key in self._cache:
            return self._cache[key][1]
        try:
            try:
                values: tuple = tuple(self._exact(node, p) for p in self.points)
            except NotExact:
                values = tuple(self._numeric(node, p) for p in self.points)
        except (ZeroDivisionError, ValueError, ArithmeticError) as exc:
            raise Undefined(type(exc).__name__) from exc
        self._cache[key] = (node, values)
        return values

    def close(self, a: object, b: object) -> bool:
        """Equality of two values: exact for Fractions, else to within the tolerance.

        The tolerance is relative (1e-30) plus an absolute floor (1e-48) for rounding noise
        around zero at 60 digits, so genuinely tiny values such as ``e^{-100}`` stay distinct.
        """
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            return a == b
        ctx = self.ctx
        x, y = ctx.mpc(_mp(ctx, a)), ctx.mpc(_mp(ctx, b))
        return abs(x - y) <= self.tol * max(abs(x), abs(y)) + self.floor

    def ratio(self, a: object, b: object) -> mpmath.mpc:
        """``a / b`` as an mpmath number."""
        return _mp(self.ctx, a) / _mp(self.ctx, b)

    def is_positive(self, value: object) -> bool:
        """True for a positive real value (to within the tolerance for the imaginary part)."""
        if isinstance(value, Fraction):
            return value > 0
        ctx = self.ctx
        z = ctx.mpc(value)
        return abs(ctx.im(z)) <= self.tol * max(abs(z), 1) and ctx.re(z) > 0

    def rounds_to(self, value: mpmath.mpc, decimal: Num) -> bool:
        """True when the real numeric ``value`` rounded to ``decimal.places`` places is ``decimal``."""
        half_ulp = Fraction(1, 2 * 10**decimal.places)
        ctx = self.ctx
        z = ctx.mpc(value)
        if abs(ctx.im(z)) > self.tol * max(abs(z), 1):
            return False
        return abs(ctx.re(z) - _mp(ctx, decimal.value)) <= _mp(ctx, half_ulp) * (1 + self.tol)

    # -- exact ----------------------------------------------------------------------------
    def _tick(self) -> None:
        self._steps += 1
        if not self._steps & 63:
            self.budget.check()

    def _exact(self, node: Node, point: dict[str, Fraction]) -> Fraction:
        self._tick()
        kind = type(node)
        if kind is Num:
            return node.value  # type: ignore[attr-defined]
        if kind is Sym:
            return point[node.name]  # type: ignore[attr-defined]
        if kind is Add:
            total = Fraction(0)
            for arg in node.args:  # type: ignore[attr-defined]
                total += self._exact(arg, point)
                _bound(total, self.budget)
            return total
        if kind is Mul:
            prod = Fraction(1)
            for arg in node.args:  # type: ignore[attr-defined]
                prod *= self._exact(arg, point)
                _bound(prod, self.budget)
            return prod
        if kind is Pow:
            value = _exact_pow(self._exact(node.base, point), self._exact(node.exp, point))  # type: ignore
            _bound(value, self.budget)
            return value
        if kind is Func:
            return _exact_func(node.name, [self._exact(a, point) for a in node.args])  # type: ignore
        if kind is Percent:
            return self._exact(node.arg, point) / 100  # type: ignore[attr-defined]
        if kind in (Const, Degree):
            raise NotExact
        raise Unsupported(kind.__name__)

    # -- numeric --------------------------------------------------------------------------
    def _numeric(self, node: Node, point: dict[str, Fraction]) -> mpmath.mpc:
        self._tick()
        ctx = self.ctx
        kind = type(node)
        if kind is Num:
            return _mp(ctx, node.value)  # type: ignore[attr-defined]
        if kind is Sym:
            return _mp(ctx, point[node.name])  # type: ignore[attr-defined]
        if kind is Const:
            name = node.name  # type: ignore[attr-defined]
            if name == "oo":
                raise Unsupported("infinity in arithmetic")
            return {"pi": ctx.pi, "e": ctx.e, "i": ctx.mpc(0, 1)}[name] + 0
        if kind is Add:
            total = ctx.mpf(0)
            for arg in node.args:  # type: ignore[attr-defined]
                total = self._check(total + self._numeric(arg, point))
            return total
        if kind is Mul:
            prod = ctx.mpf(1)
            for arg in node.args:  # type: ignore[attr-defined]
                prod = self._check(prod * self._numeric(arg, point))
            return prod
        if kind is Pow:
            return self._num_pow(node, point)  # type: ignore[arg-type]
        if kind is Func:
            return self._num_func(node, point)  # type: ignore[arg-type]
        if kind is Percent:
            return self._numeric(node.arg, point) / 100  # type: ignore[attr-defined]
        if kind is Degree:
            return self._numeric(node.arg, point) * ctx.pi / 180  # type: ignore[attr-defined]
        raise Unsupported(kind.__name__)

    def _check(self, x: mpmath.mpc) -> mpmath.mpc:
        ctx = self.ctx
        if not ctx.isfinite(x):
            raise Undefined("not finite")
        if x and abs(ctx.mag(x)) > MAX_MAG_BITS:
            raise LimitExceeded("magnitude too large")
        return x

    def _try_exact(self, node: Node, point: dict[str, Fraction]) -> Fraction | None:
        try:
            return self._exact(node, point)
        except NotExact:
            return None

    def _num_pow(self, node: Pow, point: dict[str, Fraction]) -> mpmath.mpc:
        ctx = self.ctx
        base = self._numeric(node.base, point)
        exp_q = self._try_exact(node.exp, point)
        exp = _mp(ctx, exp_q) if exp_q is not None else self._numeric(node.exp, point)
        if not base:
            if ctx.re(exp) > 0:
                return ctx.mpf(0)
            raise Undefined("zero to a non-positive power")
        log_b = ctx.log(base)
        t = exp * log_b
        if abs(ctx.re(t)) > MAX_MAG_BITS * 0.69 or abs(ctx.im(t)) > MAX_TRIG_ARG:
            raise LimitExceeded("power too large")
        if exp_q is not None and exp_q.denominator % 2 and not ctx.im(base) and ctx.re(base) < 0:
            mag = ctx.exp(exp * ctx.log(-ctx.re(base)))
            return self._check(-mag if exp_q.numerator % 2 else mag)
        if exp_q is not None and exp_q.denominator == 1:
            return self._check(ctx.power(base, int(exp_q)))
        return self._check(ctx.exp(t))

    def _num_func(self, node: Func, point: dict[str, Fraction]) -> mpmath.mpc:
        ctx = self.ctx
        name = node.name
        args = [self._numeric(a, point) for a in node.args]
        x = args[0]
        try:
            if name in ("sin", "cos", "tan", "cot", "sec", "csc", "sinh", "cosh", "tanh", "exp"):
                limit = MAX_TRIG_ARG if name in ("sin", "cos", "tan", "cot", "sec", "csc") else 1e5
                if abs(ctx.re(x)) > limit or abs(ctx.im(x)) > 1e5:
                    raise LimitExceeded("argument too large")
                return self._check(getattr(ctx, name)(x))
            if name in ("asin", "acos", "atan"):
                return self._check(getattr(ctx, name)(x))
            if name == "acot":
                return self._check(ctx.pi / 2 - ctx.atan(x))
            if name in ("ln", "log", "log10"):
                if not x:
                    raise Undefined("log of zero")
                if name == "log10":
                    return self._check(ctx.log(x) / ctx.log(10))
                if len(args) == 2:
                    return self._check(ctx.log(x) / ctx.log(args[1]))
                return self._check(ctx.log(x))
            if name == "sqrt":
                return self._check(ctx.sqrt(x))
            if name in ("root", "cbrt"):
                k = self._try_exact(node.args[1], point) if name == "root" else Fraction(3)
                k_val = _mp(ctx, k) if k is not None else args[1]
                if (
                    k is not None
                    and k.denominator == 1
                    and k.numerator % 2
                    and not ctx.im(x)
                    and ctx.re(x) < 0
                ):
                    return self._check(-ctx.root(-ctx.re(x), int(k)))
                return self._check(ctx.power(x, 1 / k_val))
            if name == "abs":
                return self._check(ctx.mpf(abs(x)))
            if name in ("floor", "ceil"):
                return self._check(getattr(ctx, name)(ctx.re(x)))
            if name == "factorial":
                if abs(x) > MAX_FACTORIAL:
                    raise LimitExceeded("factorial too large")
                return self._check(ctx.gamma(x + 1))
            if name == "binom":
                if abs(x) > 100 * MAX_FACTORIAL or abs(args[1]) > 100 * MAX_FACTORIAL:
                    raise LimitExceeded("binomial too large")
                return self._check(ctx.binomial(x, args[1]))
            if name in ("max", "min"):
                reals = [ctx.re(a) for a in args]
                return max(reals) if name == "max" else min(reals)
        except (ValueError, ZeroDivisionError, ArithmeticError) as exc:
            raise Undefined(name) from exc
        raise Unsupported(name)


def _mp(ctx: mpmath.ctx_mp.MPContext, value: object) -> mpmath.mpc:
    if isinstance(value, Fraction):
        return ctx.mpf(value.numerator) / value.denominator
    return value  # type: ignore[return-value]


def _bound(value: Fraction, budget: Budget) -> None:
    bits = _bits(value)
    if bits > MAX_INT_BITS:
        raise NotExact("too many digits")
    if bits > 4096:
        budget.check()


def _exact_pow(base: Fraction, exp: Fraction) -> Fraction:
    if base == 0:
        if exp > 0:
            return Fraction(0)
        raise Undefined("zero to a non-positive power")
    if base == 1:
        return base
    p, q = exp.numerator, exp.denominator
    if q != 1:
        if q > 64 or _bits(base) > 4096:
            raise NotExact
        sign = 1
        if base < 0:
            if q % 2 == 0:
                raise NotExact
            sign, base = -1, -base
        num, den = _iroot(base.numerator, q), _iroot(base.denominator, q)
        if num is None or den is None:
            raise NotExact
        base = Fraction(sign * num, den)
    if base == 1:
        return base
    if base == -1:
        return Fraction(-1 if p % 2 else 1)
    if abs(p) * _bits(base) > MAX_INT_BITS:
        raise NotExact("power too large")
    return base**p


def _as_int(value: Fraction) -> int:
    if value.denominator != 1:
        raise NotExact
    return value.numerator


def _exact_func(name: str, args: list[Fraction]) -> Fraction:
    x = args[0]
    if name in ("sqrt", "cbrt", "root"):
        k = 2 if name == "sqrt" else 3 if name == "cbrt" else args[1]
        if k == 0:
            raise Undefined("zeroth root")
        return _exact_pow(x, 1 / Fraction(k))
    if name == "abs":
        return abs(x)
    if name == "floor":
        return Fraction(math.floor(x))
    if name == "ceil":
        return Fraction(math.ceil(x))
    if name == "factorial":
        n = _as_int(x)
        if n < 0:
            raise Undefined("factorial of a negative integer")
        if n > MAX_FACTORIAL:
            raise LimitExceeded("factorial too large")
        return Fraction(math.factorial(n))
    if name == "binom":
        n, k = _as_int(x), _as_int(args[1])
        if not 0 <= n <= 100 * MAX_FACTORIAL:
            raise NotExact
        if min(k, n - k) > MAX_FACTORIAL:
            raise LimitExceeded("binomial too large")
        return Fraction(math.comb(n, k) if 0 <= k <= n else 0)
    if name in ("gcd", "lcm"):
        ints = [_as_int(a) for a in args]
        if any(i.bit_length() > 4096 for i in ints):
            raise LimitExceeded("gcd argument too large")
        return Fraction(math.gcd(*ints) if name == "gcd" else math.lcm(*ints))
    if name in ("max", "min"):
        return max(args) if name == "max" else min(args)
    if x == 0 and name in ("sin", "tan", "asin", "atan", "sinh", "tanh"):
        return Fraction(0)
    if x == 0 and name in ("cos", "exp", "cosh"):
        return Fraction(1)
    if x == 1 and name in ("ln", "log", "log10") and len(args) == 1:
        return Fraction(0)
    raise NotExact
