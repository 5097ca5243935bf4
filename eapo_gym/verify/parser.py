"""Recursive-descent parser from plain or LaTeX maths to :mod:`nodes` trees.

Nothing here evaluates the text: it builds immutable nodes from a whitelist of syntax, and
bounds nesting depth, node count, literal size and CPU time while doing so.
"""

from __future__ import annotations

from fractions import Fraction
from string import ascii_letters, digits

from .limits import MAX_DEPTH, MAX_ITEMS, MAX_LITERAL_DIGITS, MAX_NODES, Budget, LimitExceeded
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
)


class ParseError(Exception):
    """The text is not mathematics that this parser understands."""


_LETTERS = frozenset(ascii_letters)
_DIGITS = frozenset(digits)
_MINUS_ONE = Num(Fraction(-1))

_FUNCS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "asin": "asin", "acos": "acos",
    "atan": "atan", "arccot": "acot", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "ln": "ln", "log": "log", "lg": "log10", "exp": "exp", "sqrt": "sqrt", "cbrt": "cbrt",
    "abs": "abs", "floor": "floor", "ceil": "ceil", "gcd": "gcd", "lcm": "lcm", "max": "max",
    "min": "min", "binom": "binom", "binomial": "binom", "factorial": "factorial",
}  # fmt: skip
_INVERSE = {"sin": "asin", "cos": "acos", "tan": "atan", "cot": "acot"}
_ARITY = {"gcd": (2, MAX_ITEMS), "lcm": (2, MAX_ITEMS), "max": (1, MAX_ITEMS), "min": (1, MAX_ITEMS),
          "binom": (2, 2), "log": (1, 2)}  # fmt: skip
_CONSTS = {"pi": "pi", "e": "e", "i": "i", "oo": "oo", "inf": "oo", "infty": "oo", "infinity": "oo"}
_GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
    "rho varrho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma "
    "Upsilon Phi Psi Omega".split()
)
_TEXT_CMDS = frozenset("text textrm textnormal textit textbf textsf mbox".split())
_STYLE_CMDS = frozenset("mathrm mathbf mathit mathsf mathtt boldsymbol bm rm bf".split())
_MATRIX_ENVS = frozenset("matrix pmatrix bmatrix Bmatrix smallmatrix array".split())
_RELOPS = {"le": "<=", "leq": "<=", "leqslant": "<=", "ge": ">=", "geq": ">=", "geqslant": ">=",
           "ne": "!=", "neq": "!=", "lt": "<", "gt": ">", "approx": "~", "simeq": "~",
           "in": "in"}  # fmt: skip
_OPERAND_CMDS = (
    frozenset({"frac", "sqrt", "binom", "pi", "infty", "imath", "operatorname", "mathbb", "lfloor",
               "lceil", "begin", "{", "emptyset", "varnothing"})
    | _GREEK | _TEXT_CMDS | _STYLE_CMDS | frozenset(_FUNCS)
)  # fmt: skip
_SEP_WORDS = ("or", "and")
_SHORT_WORDS = frozenset({"yes", "no", "not", "are", "is", "the", "to", "of"})  # not products of letters
_REPEAT_MARKS = ("...", "\\ldots", "\\dots", "\\cdots")


def neg(node: Node) -> Node:
    """Return ``-node``, folding literals."""
    if isinstance(node, Num):
        return Num(-node.value, node.places, node.digits)
    return Mul((_MINUS_ONE, node))


def parse(text: str, budget: Budget) -> Node:
    """Parse a normalized answer string into a node tree (raises ParseError or LimitExceeded)."""
    if not text:
        raise ParseError("empty")
    return _Parser(text, budget).parse()


class _Parser:
    __slots__ = ("s", "i", "n", "depth", "nodes", "abs_open", "budget")

    def __init__(self, text: str, budget: Budget) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)
        self.depth = 0
        self.nodes = 0
        self.abs_open = 0
        self.budget = budget

    # -- low-level helpers -------------------------------------------------------------
    def parse(self) -> Node:
        node = self._list(top=True)
        self._ws()
        if self.i != self.n:
            raise ParseError(f"unexpected {self.s[self.i]!r}")
        return node

    def _ws(self) -> str:
        s, i, n = self.s, self.i, self.n
        while i < n and s[i] == " ":
            i += 1
        self.i = i
        return s[i] if i < n else ""

    def _at(self, token: str) -> bool:
        return self.s.startswith(token, self.i)

    def _eat(self, token: str) -> bool:
        self._ws()
        if self.s.startswith(token, self.i):
            self.i += len(token)
            return True
        return False

    def _expect(self, token: str) -> None:
        if not self._eat(token):
            raise ParseError(f"expected {token!r}")

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitExceeded("nesting too deep")

    def _count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitExceeded("too many nodes")
        if not self.nodes & 31:
            self.budget.check()

    def _cmd_name(self, at: int) -> str:
        """Name of the LaTeX command starting at ``at`` (which holds a backslash)."""
        s, j = self.s, at + 1
        if j < self.n and s[j] in _LETTERS:
            while j < self.n and s[j] in _LETTERS:
                j += 1
            return s[at + 1 : j]
        return s[at + 1 : j + 1]

    def _word_at(self, at: int) -> str:
        s, j = self.s, at
        while j < self.n and s[j] in _LETTERS:
            j += 1
        return s[at:j]

    def _braced_raw(self) -> str:
        """Raw text of a ``{...}`` group with no nested braces."""
        self._expect("{")
        end = self.s.find("}", self.i)
        if end < 0 or "{" in self.s[self.i : end]:
            raise ParseError("bad group")
        raw = self.s[self.i : end]
        self.i = end + 1
        return raw

    # -- grammar ----------------------------------------------------------------------
    def _sep(self, top: bool) -> bool:
        c = self._ws()
        if c in (",", ";"):
            self.i += 1
            if top:
                self._conjunction()  # "1, 2, and 3"
            return True
        return top and self._conjunction()

    def _conjunction(self) -> bool:
        """Consume ``and`` or ``or``, bare or as ``\\text{and}`` (also ``\\text{,}``)."""
        c = self._ws()
        if c in _LETTERS and self._word_at(self.i) in _SEP_WORDS:
            self.i += len(self._word_at(self.i))
            return True
        if c == "\\" and self._cmd_name(self.i) in _TEXT_CMDS:
            save = self.i
            self.i += 1 + len(self._cmd_name(self.i))
            try:
                raw = self._braced_raw().strip()
            except ParseError:
                raw = ""
            if raw in _SEP_WORDS or raw == ",":
                return True
            self.i = save
        return False

    def _list(self, top: bool = False) -> Node:
        self._enter()
        items = [self._item(top)]
        while self._sep(top):
            if self._ws() in ("", ")", "]", "}") or self._at("\\}"):
                break
            items.append(self._item(top))
            if len(items) > MAX_ITEMS:
                raise LimitExceeded("too many items")
        self.depth -= 1
        return items[0] if len(items) == 1 else Seq("bare", tuple(items))

    def _item(self, top: bool) -> Node:
        """A relation; at top level its sides may be ratios."""
        return self._relation(ratios=top)

    def _ratio(self) -> Node:
        """``a : b``, the ratio ``a / b`` (``V_1 : V_2 = 11 : 21``); a three-part ratio is not parsed."""
        node = self._union()
        if self._ws() == ":":
            self.i += 1
            node = Mul((node, Pow(self._union(), _MINUS_ONE)))
            if self._ws() == ":":
                raise ParseError("three-part ratio")
        return node

    def _set_builder(self) -> Node | None:
        """``\\{x \\mid x > 2\\}`` or ``\\{x : x > 2\\}`` as the condition; None if not set-builder."""
        save, saved_abs = self.i, self.abs_open
        self.abs_open = 1  # a bar ends the head instead of opening |...|
        try:
            self._relation()
            builder = self._ws() in ("|", ":")
        except ParseError:
            builder = False
        finally:
            self.abs_open = saved_abs
        if not builder:
            self.i = save
            return None
        self.i += 1
        condition = self._list()
        self._expect("\\}")
        return condition

    def _relop(self) -> str | None:
        c = self._ws()
        s, i = self.s, self.i
        for tok, op in (("<=", "<="), (">=", ">="), ("!=", "!="), ("==", "="), ("=", "="), ("<", "<"),
                        (">", ">")):  # fmt: skip
            if s.startswith(tok, i):
                self.i += len(tok)
                return op
        if c == "\\":
            name = self._cmd_name(i)
            if name in _RELOPS:
                self.i += 1 + len(name)
                return _RELOPS[name]
        return None

    def _relation(self, ratios: bool = False) -> Node:
        side = self._ratio if ratios else self._union
        sides = [side()]
        ops = []
        while (op := self._relop()) is not None:
            ops.append(op)
            sides.append(side())
            if len(sides) > MAX_ITEMS:
                raise LimitExceeded("relation chain too long")
        return sides[0] if not ops else Rel(tuple(ops), tuple(sides))

    def _union(self) -> Node:
        parts = [self._sum()]
        while self._ws() == "\\" and self._cmd_name(self.i) == "cup":
            self.i += 4
            parts.append(self._sum())
            if len(parts) > MAX_ITEMS:
                raise LimitExceeded("union too long")
        return parts[0] if len(parts) == 1 else Union(tuple(parts))

    def _sum(self) -> Node:
        self._enter()
        terms = [self._term()]
        while True:
            c = self._ws()
            if c == "+":
                self.i += 1
                terms.append(self._term())
            elif c == "-":
                self.i += 1
                terms.append(neg(self._term()))
            elif c == "\\" and self._cmd_name(self.i) in ("pm", "mp"):
                self.i += 3
                base = terms[0] if len(terms) == 1 else Add(tuple(terms))
                terms = [PlusMinus(base, self._term())]
            else:
                break
            self._count()
        self.depth -= 1
        return terms[0] if len(terms) == 1 else Add(tuple(terms))

    def _starts_operand(self) -> bool:
        c = self._ws()
        if not c:
            return False
        if c in _DIGITS or c in "({":
            return True
        if c == ".":
            return self.s[self.i + 1 : self.i + 2] in _DIGITS
        if c in _LETTERS:
            return self._word_at(self.i) not in _SEP_WORDS
        if c == "|":
            return self.abs_open == 0
        if c == "\\":
            name = self._cmd_name(self.i)
            if name in _TEXT_CMDS:
                end = self.s.find("}", self.i)
                return end < 0 or self.s[self.i : end].split("{")[-1].strip() not in (*_SEP_WORDS, ",")
            return name in _OPERAND_CMDS
        return False

    def _term(self) -> Node:
        factors = [self._unary()]
        while True:
            c = self._ws()
            if c == "*" and not self._at("**"):
                self.i += 1
                factors.append(self._unary())
            elif c == "/":
                self.i += 1
                factors.append(Pow(self._unary(), _MINUS_ONE))
            elif c == "\\" and self._cmd_name(self.i) in ("cdot", "times", "div"):
                name = self._cmd_name(self.i)
                self.i += 1 + len(name)
                rhs = self._unary()
                factors.append(Pow(rhs, _MINUS_ONE) if name == "div" else rhs)
            elif self._starts_operand():
                mixed = len(factors) == 1 and self._at("\\frac") and _is_int_literal(factors[0])
                nxt = self._power()
                if mixed and _is_proper_fraction(nxt):
                    whole = factors[0].value
                    frac = nxt.args[0].value / nxt.args[1].base.value
                    factors[0] = Num(whole - frac if whole < 0 else whole + frac)
                else:
                    factors.append(nxt)
            else:
                break
            self._count()
            if len(factors) > MAX_NODES:
                raise LimitExceeded("term too long")
        return factors[0] if len(factors) == 1 else Mul(tuple(factors))

    def _unary(self) -> Node:
        self._enter()
        c = self._ws()
        if c == "-":
            self.i += 1
            node = neg(self._unary())
        elif c == "+":
            self.i += 1
            node = self._unary()
        elif c == "\\" and self._cmd_name(self.i) in ("pm", "mp"):
            self.i += 3
            node = PlusMinus(None, self._unary())
        else:
            node = self._power()
        self.depth -= 1
        return node

    def _power(self) -> Node:
        base = self._postfix()
        if self._ws() == "^" or self._at("**"):
            self.i += 1 if self.s[self.i] == "^" else 2
            return Pow(base, self._exponent())
        return base

    def _exponent(self) -> Node:
        self._enter()
        if self._ws() == "{":
            self.i += 1
            node = self._list()
            self._expect("}")
            node = self._postfix_ops(node)
        else:
            node = self._unary()
        self.depth -= 1
        return node

    def _postfix(self) -> Node:
        return self._postfix_ops(self._primary())

    def _postfix_ops(self, node: Node) -> Node:
        while True:
            c = self._ws()
            if c == "!" and not self._at("!="):
                self.i += 1
                node = Func("factorial", (node,))
            elif c == "%":
                self.i += 1
                node = Percent(node)
            elif c == "°":
                self.i += 1
                node = Degree(node)
            else:
                return node
            self._count()

    def _primary(self) -> Node:
        self._count()
        c = self._ws()
        if c in _DIGITS or (c == "." and self.s[self.i + 1 : self.i + 2] in _DIGITS):
            return self._number()
        if c in _LETTERS:
            return self._word()
        if c == "\\":
            return self._command()
        if c in "([":
            return self._bracket()
        if c == "{":
            self.i += 1
            return self._group("}", "set")
        if c == "|":
            self.i += 1
            self.abs_open += 1
            node = self._sum()
            self._expect("|")
            self.abs_open -= 1
            return Func("abs", (node,))
        raise ParseError(f"unexpected {c!r}" if c else "unexpected end")

    # -- literals and names -----------------------------------------------------------
    def _digits(self) -> str:
        s, i, n = self.s, self.i, self.n
        j = i
        while j < n and s[j] in _DIGITS:
            j += 1
        self.i = j
        if j - i > MAX_LITERAL_DIGITS:
            raise LimitExceeded("number literal too long")
        return s[i:j]

    def _number(self) -> Node:
        whole = self._digits()
        if self._at("_") and whole:
            return self._based(whole)
        frac, dot = "", False
        if self._at(".") and not self._at("..."):
            dot = True
            self.i += 1
            frac = self._digits()
        value = Fraction(int(whole or "0"))
        if frac:
            value += Fraction(int(frac), 10 ** len(frac))
        repeat = self._repeating(whole, frac) if dot else None
        if repeat is not None:
            return Num(repeat)
        sig = len((whole + frac).lstrip("0"))
        places = len(frac) if dot else -1
        exp = self._sci_exponent(dot)
        if exp is not None:
            value *= Fraction(10) ** exp
            places = max(0, len(frac) - exp)
        if len(whole) + len(frac) > MAX_LITERAL_DIGITS:
            raise LimitExceeded("number literal too long")
        return Num(value, places, sig)

    def _based(self, whole: str) -> Node:
        """An integer written in another base: ``204_5`` or ``204_{5}`` (bases 2 to 10)."""
        self.i += 1
        raw = self._braced_raw().strip() if self._ws() == "{" else self._digits()
        if not raw.isdigit() or not 2 <= int(raw) <= 10 or any(int(d) >= int(raw) for d in whole):
            raise ParseError("bad base")
        return Num(Fraction(int(whole, int(raw))))

    def _sci_exponent(self, dot: bool) -> int | None:
        s, i = self.s, self.i
        if i >= self.n or s[i] not in "eE":
            return None
        j = i + 1
        signed = j < self.n and s[j] in "+-"
        j += signed
        k = j
        while k < self.n and s[k] in _DIGITS:
            k += 1
        if k == j or (k < self.n and s[k] in _LETTERS):
            return None
        if signed and not dot and s[i] == "e" and k - j < 2:
            return None  # "2e-1" reads as 2e - 1; "1e-05", "2E-1" and "1.5e-3" are scientific
        if k - j > 3 or int(s[j:k]) > MAX_LITERAL_DIGITS:
            raise LimitExceeded("exponent too large")
        self.i = k
        return int(s[i + 1 : k])

    def _repeating(self, whole_digits: str, frac: str) -> Fraction | None:
        """Value of a repeating decimal written with overline, dot, parentheses or an ellipsis."""
        whole = int(whole_digits or "0")
        rep = None
        save = self.i
        if self._at("\\overline") or self._at("\\dot"):
            self.i += 9 if self._at("\\overline") else 4
            rep = self._braced_raw().strip() if self._ws() == "{" else self._digits()
            while self._at("\\dot"):
                self.i += 4
                rep += self._braced_raw().strip()
        elif self._at("("):
            end = self.s.find(")", self.i)
            if end > self.i + 1 and all(ch in _DIGITS for ch in self.s[self.i + 1 : end]):
                rep = self.s[self.i + 1 : end]
                self.i = end + 1
        else:
            for mark in _REPEAT_MARKS:
                if self._at(mark):
                    self.i += len(mark)
                    return _ellipsis_value(whole, frac)
        if rep is None:
            self.i = save
            return None
        if not rep or not rep.isdigit() or len(rep) + len(frac) > MAX_LITERAL_DIGITS:
            raise ParseError("bad repeating decimal")
        head = Fraction(int(frac or "0"), 10 ** len(frac))
        tail = Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(frac))
        return whole + head + tail

    def _subscript(self, name: str) -> str:
        if not self._at("_"):
            return name
        self.i += 1
        if self._ws() == "{":
            raw = self._braced_raw().replace(" ", "")
        else:
            raw = self.s[self.i : self.i + 1]
            self.i += 1
        if not raw or not all(ch in _LETTERS or ch in _DIGITS for ch in raw):
            raise ParseError("bad subscript")
        return f"{name}_{raw}"

    def _word(self) -> Node:
        word = self._word_at(self.i)
        self.i += len(word)
        if word in _FUNCS:
            return self._apply(_FUNCS[word])
        if word in _CONSTS and not self._at("_"):
            return Const(_CONSTS[word])
        if word == "Matrix":
            return _as_matrix(self._bracket())
        if len(word) == 1:
            return Sym(self._subscript(word))
        if len(word) <= 3 and (word.isupper() or word.lower() not in _SHORT_WORDS):
            self.i -= len(word) - 1
            return Const(_CONSTS[word[0]]) if word[0] in "ei" else Sym(word[0])
        raise ParseError(f"unknown word {word!r}")

    # -- commands ---------------------------------------------------------------------
    def _command(self) -> Node:
        name = self._cmd_name(self.i)
        self.i += 1 + len(name)
        if name == "frac":
            num = self._arg()
            den = self._arg()
            return Mul((num, Pow(den, _MINUS_ONE)))
        if name == "sqrt":
            index = None
            if self._ws() == "[":
                self.i += 1
                index = self._sum()
                self._expect("]")
            arg = self._arg()
            return Func("sqrt", (arg,)) if index is None else Func("root", (arg, index))
        if name == "binom":
            return Func("binom", (self._arg(), self._arg()))
        if name in ("pi", "infty"):
            return Const("pi" if name == "pi" else "oo")
        if name == "imath":
            return Const("i")
        if name in _GREEK:
            return Sym(self._subscript(name))
        if name in _FUNCS:
            return self._apply(_FUNCS[name])
        if name == "operatorname":
            op = self._braced_raw().strip()
            if op not in _FUNCS:
                raise ParseError(f"unknown operator {op!r}")
            return self._apply(_FUNCS[op])
        if name in _TEXT_CMDS:
            return self._text(self._braced_raw().strip())
        if name in _STYLE_CMDS:
            return self._style()
        if name == "mathbb":
            field = self._braced_raw().strip() if self._ws() == "{" else self._word_at(self.i)[:1]
            if field == "R":
                return Interval(neg(Const("oo")), Const("oo"), True, True)
            raise ParseError("unsupported number set")
        if name == "{":
            return self._set_builder() or self._group("\\}", "set", always=True)
        if name in ("emptyset", "varnothing"):
            return Seq("set", ())
        if name in ("lfloor", "lceil"):
            inner = self._sum()
            self._expect("\\rfloor" if name == "lfloor" else "\\rceil")
            return Func("floor" if name == "lfloor" else "ceil", (inner,))
        if name == "begin":
            return self._matrix(self._braced_raw().strip())
        raise ParseError(f"unsupported command \\{name}")

    def _arg(self) -> Node:
        """A LaTeX macro argument: a braced group, a command or a single character."""
        c = self._ws()
        if c == "{":
            self.i += 1
            self._enter()
            node = self._list()
            self.depth -= 1
            self._expect("}")
            return node
        if c == "\\":
            return self._command()
        if c == "(":
            return self._bracket()
        if c in _DIGITS:
            self.i += 1
            return Num(Fraction(int(c)), -1, 1)
        if c in _LETTERS:
            self.i += 1
            return Const(_CONSTS[c]) if c in "ei" else Sym(c)
        raise ParseError("missing argument")

    def _text(self, raw: str) -> Node:
        if raw and all(ch in _DIGITS or ch in ".-/ " for ch in raw) and any(ch in _DIGITS for ch in raw):
            return _Parser(raw, self.budget).parse()
        if len(raw) == 1 and raw in _LETTERS:
            return Const(_CONSTS[raw]) if raw in "ei" else Sym(raw)
        if not raw or len(raw) > 200:
            raise ParseError("empty or long text")
        text = " ".join(raw.lower().split())
        if text in ("all real numbers", "all reals", "all real x", "real numbers"):
            return Interval(neg(Const("oo")), Const("oo"), True, True)
        return Text(text)

    def _style(self) -> Node:
        if self._ws() != "{":
            return self._arg()
        save = self.i
        raw = self._braced_raw().strip()
        if raw in ("e", "i"):
            return Const(raw)
        if len(raw) > 1 and all(ch in _LETTERS for ch in raw) and raw not in _FUNCS:
            return Text(raw.lower())
        self.i = save
        return self._arg()

    def _apply(self, name: str) -> Node:
        """A function application with optional power/index: ``\\sin^2 x``, ``\\log_2(8)``."""
        power: Node | None = None
        base: Node | None = None
        for _ in range(2):
            c = self._ws()
            if c == "^":
                self.i += 1
                exp = self._exponent()
                if isinstance(exp, Num) and exp.value == -1 and name in _INVERSE:
                    name = _INVERSE[name]
                else:
                    power = exp
            elif c == "_" and name == "log":
                self.i += 1
                base = self._arg()
        c = self._ws()
        if c == "(":
            self.i += 1
            args = self._items(")")
            self._expect(")")
        elif c == "{":
            args = (self._arg(),)
        else:
            factors = [self._power()]
            while self._starts_operand() and not self._starts_function():
                factors.append(self._power())
                self._count()
            args = (factors[0] if len(factors) == 1 else Mul(tuple(factors)),)
        if base is not None:
            args = (*args, base)
        lo, hi = _ARITY.get(name, (1, 1))
        if not lo <= len(args) <= hi:
            raise ParseError(f"bad arity for {name}")
        node: Node = Func(name, args)
        return node if power is None else Pow(node, power)

    def _starts_function(self) -> bool:
        c = self._ws()
        if c == "\\":
            return self._cmd_name(self.i) in _FUNCS or self._cmd_name(self.i) == "operatorname"
        return c in _LETTERS and self._word_at(self.i) in _FUNCS

    # -- groups -----------------------------------------------------------------------
    def _items(self, closer: str) -> tuple[Node, ...]:
        saved, self.abs_open = self.abs_open, 0
        self._enter()
        items = [self._relation()]
        while self._sep(False):
            items.append(self._relation())
            if len(items) > MAX_ITEMS:
                raise LimitExceeded("too many items")
        self.depth -= 1
        self.abs_open = saved
        if not self._at(closer) and closer not in (")", "]"):
            raise ParseError(f"expected {closer!r}")
        return tuple(items)

    def _group(self, closer: str, kind: str, always: bool = False) -> Node:
        if self._ws() == closer[-1] or self._at(closer):
            self._expect(closer)
            if always:
                return Seq(kind, ())
            raise ParseError("empty group")
        items = self._items(closer)
        self._expect(closer)
        if len(items) == 1 and not always:
            return items[0]
        return Seq(kind, items)

    def _bracket(self) -> Node:
        opener = self.s[self.i]
        self.i += 1
        items = self._items(")")
        closer = self._ws()
        if closer not in (")", "]"):
            raise ParseError("unclosed bracket")
        self.i += 1
        if len(items) == 1 and (opener + closer) in ("()", "[]"):
            return items[0]
        if len(items) == 2 and (opener + closer) in ("(]", "[)"):
            return Interval(items[0], items[1], opener == "(", closer == ")")
        if (opener + closer) in ("()", "[]"):
            return Seq("tuple" if opener == "(" else "list", items)
        raise ParseError("bad bracket pair")

    def _matrix(self, env: str) -> Node:
        if env not in _MATRIX_ENVS:
            raise ParseError(f"unsupported environment {env!r}")
        if env == "array" and self._ws() == "{":
            self._braced_raw()
        rows: list[tuple[Node, ...]] = []
        row: list[Node] = []
        while True:
            self._enter()
            row.append(self._sum())
            self.depth -= 1
            if len(row) + len(rows) * len(row) > MAX_ITEMS * 4:
                raise LimitExceeded("matrix too large")
            if self._eat("&"):
                continue
            if self._eat("\\\\"):
                rows.append(tuple(row))
                row = []
                if self._ws() == "\\" and self._at("\\end"):
                    break
                continue
            rows.append(tuple(row))
            break
        self._expect("\\end")
        if self._braced_raw().strip() != env:
            raise ParseError("mismatched environment")
        if len({len(r) for r in rows}) != 1:
            raise ParseError("ragged matrix")
        return Matrix(tuple(rows))


def _is_int_literal(node: Node) -> bool:
    return isinstance(node, Num) and node.places < 0 and node.value.denominator == 1


def _is_proper_fraction(node: Node) -> bool:
    if not (isinstance(node, Mul) and len(node.args) == 2 and isinstance(node.args[1], Pow)):
        return False
    num, den = node.args[0], node.args[1].base
    return (
        _is_int_literal(num)
        and _is_int_literal(den)
        and node.args[1].exp is _MINUS_ONE
        and 0 < num.value < den.value
    )


def _ellipsis_value(whole: int, frac: str) -> Fraction:
    """``0.333...`` -> 1/3: the shortest digit block repeated at least twice at the end repeats."""
    for period in range(1, len(frac) // 2 + 1):
        block = frac[-period:]
        if frac.endswith(block * 2):
            head = frac[: len(frac) - 2 * period]
            while head.endswith(block):
                head = head[:-period]
            lead = Fraction(int(head or "0"), 10 ** len(head))
            return whole + lead + Fraction(int(block), (10**period - 1) * 10 ** len(head))
    return whole + Fraction(int(frac or "0"), 10 ** len(frac))


def _as_matrix(node: Node) -> Node:
    if isinstance(node, Seq) and node.items and all(isinstance(r, Seq) for r in node.items):
        rows = tuple(r.items for r in node.items)  # type: ignore[union-attr]
        if len({len(r) for r in rows}) == 1:
            return Matrix(rows)
    raise ParseError("bad Matrix")
