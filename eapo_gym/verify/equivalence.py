"""Mathematical equivalence of a gold answer and a predicted answer.

The comparison is asymmetric (gold first): a predicted assignment ``x = 2`` is unwrapped to
``2`` against gold ``2``, but an arbitrary predicted equation is not (so restating the question
does not score). Equations are equal when ``lhs - rhs`` are proportional by a non-zero constant
(by a positive one for inequalities); sets match unordered, tuples in order, intervals by their
ends, matrices entrywise (after folding sums and products of matrices). Exact rationals compare
exactly; a decimal matches an irrational exact value only when it is that value correctly
rounded (and, for a predicted decimal, carries at least four significant digits).
"""

from __future__ import annotations

from fractions import Fraction
from itertools import product

from .evaluate import Evaluator, Undefined, Unsupported
from .limits import MAX_ITEMS, MAX_NODES, MAX_PM, Budget, LimitExceeded
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
    PlusMinus,
    Pow,
    Rel,
    Seq,
    Sym,
    Text,
    Union,
    children,
    free_symbols,
)
from .parser import neg

_OO = Const("oo")
_MINUS_ONE = Num(Fraction(-1))
_FUNCTION_LETTERS = frozenset("fghpqrsuvwyFGHPQRSTUVWY")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
APPROX_DIGITS = 4


def equivalent(gold: Node, pred: Node, budget: Budget, approx_digits: int | None = APPROX_DIGITS) -> bool:
    """True when ``pred`` is mathematically the answer ``gold``.

    ``approx_digits``: a predicted decimal with at least this many significant digits matches an
    irrational gold it rounds to (a decimal gold matches what rounds to it); None: never.
    """
    gold, pred = group_assignments(expand_pm(gold)), group_assignments(expand_pm(pred))
    evaluator = Evaluator(free_symbols([gold, pred]), budget)
    return _Judge(evaluator, budget, approx_digits).eq(gold, pred)


# -- ± expansion ------------------------------------------------------------------------
def _has_pm(node: Node) -> bool:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, PlusMinus):
            return True
        stack.extend(children(cur))
    return False


def expand_pm(node: Node) -> Node:
    """Replace ``a ± b`` by the list of both values (at most ``2**MAX_PM`` variants)."""
    if not _has_pm(node):
        return node
    items = node.items if isinstance(node, Seq) and node.kind == "bare" else (node,)
    out = [v for item in items for v in _variants(item)]
    if len(out) > 2**MAX_PM:
        raise LimitExceeded("too many ± signs")
    return Seq("bare", tuple(out))


def _combine(parts: list[list[Node]]) -> list[tuple[Node, ...]]:
    total = 1
    for p in parts:
        total *= len(p)
    if total > 2**MAX_PM:
        raise LimitExceeded("too many ± signs")
    return list(product(*parts))


def _variants(node: Node) -> list[Node]:
    if isinstance(node, PlusMinus):
        bases = _variants(node.base) if node.base is not None else [None]
        out: list[Node] = []
        for base, arg in _combine([bases, _variants(node.arg)]):  # type: ignore[list-item]
            for term in (arg, neg(arg)):
                out.append(term if base is None else Add((base, term)))
        return out
    if isinstance(node, (Add, Mul)):
        return [type(node)(c) for c in _combine([_variants(a) for a in node.args])]
    if isinstance(node, Pow):
        return [Pow(b, e) for b, e in _combine([_variants(node.base), _variants(node.exp)])]
    if isinstance(node, Func):
        return [Func(node.name, c) for c in _combine([_variants(a) for a in node.args])]
    if isinstance(node, Rel):
        return [Rel(node.ops, c) for c in _combine([_variants(s) for s in node.sides])]
    if isinstance(node, (Percent, Degree)):
        return [type(node)(v) for v in _variants(node.arg)]
    return [node]


# -- helpers ----------------------------------------------------------------------------
def _inf_sign(node: Node) -> int:
    if node == _OO:
        return 1
    if isinstance(node, Mul) and len(node.args) == 2 and node.args[1] == _OO:
        first = node.args[0]
        if isinstance(first, Num) and first.value == -1:
            return -1
    return 0


def _alternatives(node: Node) -> list[Node]:
    if isinstance(node, Percent):
        return [Mul((node.arg, Num(Fraction(1, 100)))), node.arg]
    if isinstance(node, Degree):
        return [node.arg, Mul((node.arg, Const("pi"), Num(Fraction(1, 180))))]
    return [node]


def _is_collection(node: Node) -> bool:
    return isinstance(node, (Seq, Interval, Union, Matrix))


def _is_set_of_reals(node: Node) -> bool:
    return isinstance(node, (Interval, Union))


def _cut_approx(rel: Rel) -> Node:
    """Drop the ``≈ decimal`` tail of a chain: ``x = 2/3 ≈ 0.667`` -> ``x = 2/3``."""
    ops, sides = list(rel.ops), rel.sides
    if ops[0] == "~" and _is_target(sides[0], sides[1:]):
        ops[0] = "="  # "x ≈ v" is an assignment
    if "~" not in ops:
        return Rel(tuple(ops), sides)
    k = ops.index("~")
    return sides[0] if k == 0 else Rel(tuple(ops[:k]), sides[: k + 1])


def _is_label(node: Node, sums: bool = False) -> bool:
    """A name for a quantity: symbols under products, quotients, ratios and ``|.|``.

    ``AB``, ``V_1 : V_2``, ``\\frac{NO}{BO}``, ``|AB|`` and ``f(x)`` are labels; anything with a
    number (``2x``) is not, nor is a sum unless ``sums`` (``a + b - c``).
    """
    if isinstance(node, Sym):
        return True
    if isinstance(node, Add):
        return sums and all(_is_label(arg, sums) for arg in node.args)
    if isinstance(node, Mul):
        args = node.args[1:] if sums and node.args[0] == _MINUS_ONE else node.args
        return all(_is_label(arg) for arg in args)
    if isinstance(node, Pow):
        return isinstance(node.exp, Num) and node.exp.value == -1 and _is_label(node.base)
    if isinstance(node, Func) and node.name == "abs":
        return _is_label(node.args[0])
    return False


def _is_target(lhs: Node, rest: tuple[Node, ...]) -> bool:
    """True for an assignment target: ``x``, ``(a, b)``, ``f(x)`` or ``f(2)`` with ``f`` not used on
    the right, or a label (``AB = 4``, ``V_1 : V_2 = 11 : 21``) whose symbols are not on the right."""
    if isinstance(lhs, Sym):
        return True
    if _is_label(lhs) and not free_symbols([lhs]) & free_symbols(rest):
        return True
    if isinstance(lhs, Seq) and lhs.kind == "tuple" and all(isinstance(i, Sym) for i in lhs.items):
        return True
    if isinstance(lhs, Mul) and len(lhs.args) == 2:
        head, arg = lhs.args
        if isinstance(head, Pow) and isinstance(head.exp, Num) and head.exp.value == -1:
            head = head.base  # f^{-1}(x)
        args_ok = (  # f(x), f(x, y) or a value such as f(-1)
            isinstance(arg, Sym)
            or (isinstance(arg, Seq) and all(isinstance(i, Sym) for i in arg.items))
            or not free_symbols([arg])
        )
        return (
            isinstance(head, Sym)
            and head.name in _FUNCTION_LETTERS
            and args_ok
            and head.name not in free_symbols(rest)
        )
    return False


def _value_assignment(op: str, lhs: Node, rhs: Node) -> tuple[str, Node] | None:
    """``x = 4`` (either way round) as ``("x", 4)``: such a gold needs the same assignment back,
    so restating the question (``2x + 3 = 11``) does not score."""
    if op != "=":
        return None
    if isinstance(lhs, Sym) and not free_symbols([rhs]):
        return lhs.name, rhs
    if isinstance(rhs, Sym) and not free_symbols([lhs]):
        return rhs.name, lhs
    return None


def _as_set(rel: Rel) -> Node | None:
    if rel.ops == ("in",) and isinstance(rel.sides[0], Sym):
        return rel.sides[1]
    return _rel_to_set(rel)


def _two_sided(rel: Rel) -> tuple[str, Node, Node] | None:
    if len(rel.sides) == 2:
        op, lhs, rhs = rel.ops[0], rel.sides[0], rel.sides[1]
    elif all(op == "=" for op in rel.ops):
        op, lhs, rhs = "=", rel.sides[0], rel.sides[-1]
    else:
        return None
    if op in ("<", "<="):
        return _FLIP[op], rhs, lhs
    return op, lhs, rhs


def _rel_to_set(rel: Rel) -> Interval | None:
    """``a < x <= b`` style relations of one variable or label (``0 < f(x) < 1``) as an interval."""
    if any(op in ("=", "!=", "in") for op in rel.ops):
        return None
    sides, ops = rel.sides, rel.ops
    if len(sides) == 2:
        if _is_label(sides[0]) and not free_symbols([sides[1]]):
            op, bound = ops[0], sides[1]
        elif _is_label(sides[1]) and not free_symbols([sides[0]]):
            op, bound = _FLIP[ops[0]], sides[0]
        else:
            return None
        if op in ("<", "<="):
            return Interval(neg(_OO), bound, True, op == "<")
        return Interval(bound, _OO, op == ">", True)
    if len(sides) == 3 and _is_label(sides[1]) and not free_symbols([sides[0], sides[2]]):
        if all(op in ("<", "<=") for op in ops):
            return Interval(sides[0], sides[2], ops[0] == "<", ops[1] == "<")
        if all(op in (">", ">=") for op in ops):
            return Interval(sides[2], sides[0], ops[1] == ">", ops[0] == ">")
    return None


def _as_intervals(node: Node) -> list[Interval] | None:
    if isinstance(node, Interval):
        return [node]
    if isinstance(node, Union):
        out: list[Interval] = []
        for part in node.parts:
            sub = _as_intervals(part)
            if sub is None:
                return None
            out.extend(sub)
        return out
    if isinstance(node, Seq) and node.kind in ("tuple", "list") and len(node.items) == 2:
        closed = node.kind == "list"
        return [Interval(node.items[0], node.items[1], not closed, not closed)]
    if isinstance(node, Seq) and node.kind == "set":
        return [Interval(item, item, False, False) for item in node.items]
    if isinstance(node, Seq) and node.kind == "bare" and all(isinstance(i, Rel) for i in node.items):
        parts = [_rel_to_set(i) for i in node.items]  # type: ignore[arg-type]
        return None if any(p is None for p in parts) else parts  # type: ignore[return-value]
    return None


def _rows(node: Node) -> tuple[tuple[Node, ...], ...] | None:
    if isinstance(node, Matrix):
        return node.rows
    if isinstance(node, Seq) and node.items and all(isinstance(i, Seq) for i in node.items):
        rows = tuple(i.items for i in node.items)  # type: ignore[union-attr]
        return rows if len({len(r) for r in rows}) == 1 else None
    if isinstance(node, Seq) and node.kind in ("tuple", "list", "bare"):
        return (node.items,)
    return None


def _named_values(seq: Seq) -> bool:
    """True for ``x = 1, y = 2``: assignments to distinct names, an ordered tuple when unnamed."""
    names = [
        i.sides[0].name
        for i in seq.items
        if isinstance(i, Rel) and i.ops == ("=",) and isinstance(i.sides[0], Sym)
    ]
    return len(names) == len(seq.items) == len(set(names))


def group_assignments(node: Node) -> Node:
    """``p=5, q=2; p=7, q=2`` as the tuples ``(5, 2), (7, 2)``: names repeating in one order."""
    if not (isinstance(node, Seq) and node.kind == "bare"):
        return node
    names = []
    for item in node.items:
        if not (isinstance(item, Rel) and item.ops == ("=",) and isinstance(item.sides[0], Sym)):
            return node
        names.append(item.sides[0].name)
    width = len(set(names))
    if width < 2 or len(names) == width or len(names) % width:
        return node
    starts = range(0, len(names), width)
    if any(names[k : k + width] != names[:width] for k in starts):
        return node
    values = [item.sides[1] for item in node.items]  # type: ignore[attr-defined]
    return Seq("bare", tuple(Seq("tuple", tuple(values[k : k + width])) for k in starts))


def fold_matrices(node: Node, budget: Budget) -> Node:
    """A sum or product of matrices (and scalar factors) as one matrix of entry expressions.

    The result is held to the parser's node limit, so chained products cannot grow without bound.
    """
    if not isinstance(node, (Add, Mul)):
        return node
    parts = [fold_matrices(arg, budget) for arg in node.args]
    matrices = [p for p in parts if isinstance(p, Matrix)]
    if not matrices or any(_is_collection(p) and not isinstance(p, Matrix) for p in parts):
        return node
    if isinstance(node, Add):
        if len(matrices) != len(parts) or len({_shape(m) for m in matrices}) != 1:
            return node
        rows, cols = _shape(matrices[0])
        folded = Matrix(
            tuple(tuple(Add(tuple(m.rows[i][j] for m in matrices)) for j in range(cols)) for i in range(rows))
        )
    else:
        folded = matrices[0]
        for right in matrices[1:]:
            if _shape(folded)[1] != _shape(right)[0]:
                return node
            folded = Matrix(
                tuple(
                    tuple(
                        Add(tuple(Mul((row[k], right.rows[k][j])) for k in range(len(row))))
                        for j in range(len(right.rows[0]))
                    )
                    for row in folded.rows
                )
            )
            _check_size(folded, budget)
        scalars = tuple(p for p in parts if not isinstance(p, Matrix))
        if scalars:
            folded = Matrix(tuple(tuple(Mul((*scalars, entry)) for entry in row) for row in folded.rows))
    _check_size(folded, budget)
    return folded


def _shape(matrix: Matrix) -> tuple[int, int]:
    return len(matrix.rows), len(matrix.rows[0])


def _check_size(matrix: Matrix, budget: Budget) -> None:
    count, stack = 0, [entry for row in matrix.rows for entry in row]
    while stack:
        count += 1
        if count > MAX_NODES:
            raise LimitExceeded("matrix expression too large")
        if not count & 255:
            budget.check()
        stack.extend(children(stack.pop()))


# -- the judge --------------------------------------------------------------------------
class _Judge:
    def __init__(self, evaluator: Evaluator, budget: Budget, approx_digits: int | None) -> None:
        self.ev = evaluator
        self.budget = budget
        self.approx_digits = approx_digits

    def eq(self, g: Node, p: Node) -> bool:
        self.budget.check()
        if isinstance(g, Rel) and "~" in g.ops:
            g = _cut_approx(g)
        if isinstance(p, Rel) and "~" in p.ops:
            p = _cut_approx(p)
        if isinstance(p, Rel) and not isinstance(g, Rel):
            unwrapped = self._unwrap(p, gold=False, other=g)
            return unwrapped is not None and self.eq(g, unwrapped)
        if isinstance(g, Rel) and not isinstance(p, Rel):
            unwrapped = self._unwrap(g, gold=True, other=p)
            return unwrapped is not None and self.eq(unwrapped, p)
        if isinstance(g, Rel) and isinstance(p, Rel):
            return self._rel_eq(g, p)
        if isinstance(g, (Percent, Degree)) or isinstance(p, (Percent, Degree)):
            return any(self._plain_eq(a, b) for a in _alternatives(g) for b in _alternatives(p))
        return self._plain_eq(g, p)

    def _plain_eq(self, g: Node, p: Node) -> bool:
        g, p = fold_matrices(g, self.budget), fold_matrices(p, self.budget)
        if _is_collection(g) or _is_collection(p):
            return self._coll_eq(g, p)
        if isinstance(g, Text) or isinstance(p, Text):
            return g == p
        return self._scalar_eq(g, p)

    # relations
    def _unwrap(self, rel: Rel, gold: bool, other: Node) -> Node | None:
        sides = rel.sides
        if rel.ops == ("in",) and isinstance(sides[0], Sym):
            return sides[1]
        if all(op == "=" for op in rel.ops):
            if _is_target(sides[0], sides[1:]):
                return sides[-1]
            if not gold and not free_symbols([sides[-1]]):
                # a computed value (``5 + 7 = 12``) or named sum (``a + b + c = 6``), not ``2x + 3 = 11``
                if not free_symbols(sides) or _is_label(sides[0], sums=True):
                    return sides[-1]
            return None
        if _is_set_of_reals(other) or (isinstance(other, Seq) and len(other.items) == 2):
            return _rel_to_set(rel)
        return None

    def _rel_eq(self, g: Rel, p: Rel) -> bool:
        gi, pi = _rel_to_set(g), _rel_to_set(p)
        if gi is not None and pi is not None:
            return self._interval_eq(gi, pi)
        if "in" in g.ops or "in" in p.ops:
            gs, ps = _as_set(g), _as_set(p)
            return gs is not None and ps is not None and self.eq(gs, ps)
        g2, p2 = _two_sided(g), _two_sided(p)
        if g2 is None or p2 is None:
            return g == p
        (op_g, lg, rg), (op_p, lp, rp) = g2, p2
        if op_g != op_p:
            return False
        value_g = _value_assignment(op_g, lg, rg)
        if value_g is not None:
            value_p = _value_assignment(op_p, lp, rp)
            return value_p is not None and value_p[0] == value_g[0] and self.eq(value_g[1], value_p[1])
        if not free_symbols([lg, rg, lp, rp]):
            direct = self.eq(lg, lp) and self.eq(rg, rp)
            return direct or (op_g in ("=", "!=") and self.eq(lg, rp) and self.eq(rg, lp))
        fg, fp = Add((lg, neg(rg))), Add((lp, neg(rp)))
        return self._proportional(fg, fp, positive=op_g in (">", ">="))

    def _proportional(self, fg: Node, fp: Node, positive: bool) -> bool:
        try:
            vg, vp = self.ev.vector(fg), self.ev.vector(fp)
        except (Unsupported, Undefined):
            return fg == fp
        ev = self.ev
        ratio = None
        for a, b in zip(vg, vp, strict=True):
            za, zb = ev.close(a, Fraction(0)), ev.close(b, Fraction(0))
            if za and zb:
                continue
            if za or zb:
                return False
            r = a / b if isinstance(a, Fraction) and isinstance(b, Fraction) else ev.ratio(a, b)
            if ratio is None:
                ratio = r
            elif not ev.close(r, ratio):
                return False
        if ratio is None or not positive:
            return True
        return ev.is_positive(ratio)

    # collections
    def _coll_eq(self, g: Node, p: Node) -> bool:
        if _is_set_of_reals(g) or _is_set_of_reals(p):
            gi, pi = _as_intervals(g), _as_intervals(p)
            if gi is None or pi is None:
                return False
            return self._match(gi, pi, ordered=False, same=self._interval_eq)
        if isinstance(g, Matrix) or isinstance(p, Matrix):
            return self._matrix_eq(g, p)
        if isinstance(g, Seq) and isinstance(p, Seq):
            if len(g.items) == len(p.items) == 2 and {g.kind, p.kind} == {"tuple", "list"}:
                return False  # (a, b) vs [a, b]: different interval ends
            ordered = g.kind in ("tuple", "list") or (_named_values(g) and not _named_values(p))
            return self._match(list(g.items), list(p.items), ordered=ordered, same=self.eq)
        if isinstance(g, Seq):
            return len(g.items) == 1 and self.eq(g.items[0], p)
        return len(p.items) == 1 and self.eq(g, p.items[0])  # type: ignore[union-attr]

    def _interval_eq(self, a: Interval, b: Interval) -> bool:
        lo_inf, hi_inf = _inf_sign(a.lo) != 0, _inf_sign(a.hi) != 0
        if (a.lopen != b.lopen and not lo_inf) or (a.ropen != b.ropen and not hi_inf):
            return False
        return self.eq(a.lo, b.lo) and self.eq(a.hi, b.hi)

    def _matrix_eq(self, g: Node, p: Node) -> bool:
        gr, pr = _rows(g), _rows(p)
        if gr is None or pr is None:
            return False
        if len(gr) == len(pr) and len(gr[0]) == len(pr[0]):
            return all(
                self.eq(a, b) for ra, rb in zip(gr, pr, strict=True) for a, b in zip(ra, rb, strict=True)
            )
        if min(len(gr), len(gr[0])) == 1 and min(len(pr), len(pr[0])) == 1:
            flat_g = [x for r in gr for x in r]
            flat_p = [x for r in pr for x in r]
            return self._match(flat_g, flat_p, ordered=True, same=self.eq)
        return False

    def _match(self, gs: list[Node], ps: list[Node], ordered: bool, same) -> bool:
        if len(gs) > MAX_ITEMS or len(ps) > MAX_ITEMS:
            raise LimitExceeded("too many items")
        if ordered:
            return len(gs) == len(ps) and all(same(a, b) for a, b in zip(gs, ps, strict=True))
        if len(gs) != len(ps):
            gs, ps = self._dedupe(gs, same), self._dedupe(ps, same)
            if len(gs) != len(ps):
                return False
        used = [False] * len(ps)
        for a in gs:
            for j, b in enumerate(ps):
                if not used[j] and same(a, b):
                    used[j] = True
                    break
            else:
                return False
        return True

    @staticmethod
    def _dedupe(items: list[Node], same) -> list[Node]:
        out: list[Node] = []
        for item in items:
            if not any(same(item, kept) for kept in out):
                out.append(item)
        return out

    # scalars
    def _scalar_eq(self, g: Node, p: Node) -> bool:
        sg, sp = _inf_sign(g), _inf_sign(p)
        if sg or sp:
            return sg == sp
        try:
            vg, vp = self.ev.vector(g), self.ev.vector(p)
        except (Unsupported, Undefined):
            return g == p
        if all(self.ev.close(a, b) for a, b in zip(vg, vp, strict=True)):
            return True
        if free_symbols([g, p]):
            return False
        return self._approx(g, p, vg[0], vp[0])

    def _approx(self, g: Node, p: Node, gv: object, pv: object) -> bool:
        """A decimal against an irrational value (no decimal can be exact): it must be that value
        correctly rounded. Two rationals never get here as approximations: they compare exactly."""
        g_dec = isinstance(g, Num) and g.places >= 0
        p_dec = isinstance(p, Num) and p.places >= 0
        if g_dec == p_dec or self.approx_digits is None:
            return False
        if g_dec:
            return not isinstance(pv, Fraction) and self.ev.rounds_to(pv, g)  # type: ignore[arg-type]
        return (
            p.digits >= self.approx_digits  # type: ignore[union-attr]
            and not isinstance(gv, Fraction)
            and self.ev.rounds_to(gv, p)  # type: ignore[arg-type]
        )
