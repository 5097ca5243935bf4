"""Immutable syntax tree produced by the safe parser."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


def children(node: Node) -> Iterator[Node]:
    """Direct sub-nodes of ``node``."""
    if isinstance(node, (Add, Mul)):
        yield from node.args
    elif isinstance(node, Func):
        yield from node.args
    elif isinstance(node, Pow):
        yield node.base
        yield node.exp
    elif isinstance(node, (Percent, Degree)):
        yield node.arg
    elif isinstance(node, Rel):
        yield from node.sides
    elif isinstance(node, Seq):
        yield from node.items
    elif isinstance(node, Interval):
        yield node.lo
        yield node.hi
    elif isinstance(node, Union):
        yield from node.parts
    elif isinstance(node, Matrix):
        for row in node.rows:
            yield from row
    elif isinstance(node, PlusMinus):
        if node.base is not None:
            yield node.base
        yield node.arg


def free_symbols(nodes: Iterable[Node]) -> set[str]:
    """Names of all variables in ``nodes`` (iterative walk)."""
    names: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, Sym):
            names.add(node.name)
        else:
            stack.extend(children(node))
    return names
