"""Immutable syntax tree produced by the safe parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


class Node:
    """Base class of all syntax-tree nodes."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Num(Node):
    """A number literal; ``places`` >= 0 marks a finite decimal written with that many places."""

    value: Fraction
    places: int = field(default=-1, compare=False)
    digits: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Sym(Node):
    """A free variable."""

    name: str


@dataclass(frozen=True, slots=True)
class Const(Node):
    """A named constant: ``pi``, ``e``, ``i`` or ``oo``."""

    name: str


@dataclass(frozen=True, slots=True)
class Add(Node):
    """A sum of terms."""

    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Mul(Node):
    """A product of factors."""

    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Pow(Node):
    """``base ** exp``."""

    base: Node
    exp: Node


@dataclass(frozen=True, slots=True)
class Func(Node):
    """A whitelisted function applied to arguments."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class PlusMinus(Node):
    """``base ± arg`` (``base`` is None for a leading ±)."""

    base: Node | None
    arg: Node


@dataclass(frozen=True, slots=True)
class Percent(Node):
    """``arg %``."""

    arg: Node


@dataclass(frozen=True, slots=True)
class Degree(Node):
    """``arg °``."""

    arg: Node


@dataclass(frozen=True, slots=True)
class Rel(Node):
    """A relation chain ``sides[0] ops[0] sides[1] ...`` with ops in = != < <= > >= in."""

    ops: tuple[str, ...]
    sides: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Seq(Node):
    """A collection; ``kind`` is ``tuple``, ``list``, ``set`` or ``bare`` (a top-level comma list)."""

    kind: str
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Interval(Node):
    """An interval with open or closed ends."""

    lo: Node
    hi: Node
    lopen: bool
    ropen: bool


@dataclass(frozen=True, slots=True)
class Union(Node):
    """A union of intervals or sets."""

    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Matrix(Node):
    """A matrix given row by row."""

    rows: tuple[tuple[Node, ...], ...]


@dataclass(frozen=True, slots=True)
class Text(Node):
    """Words that are not mathematics."""

    text: str
