"""Agents by name: the one list of algorithm names, read by the CLI, its help, ``compare`` and the engines.

The built-in agents are the classes decorated with ``@register_agent("name")`` in the files of
``agents/algorithms/``: the files are read (not imported) to find the names, and a module is
imported on first use, like Gymnasium's registry, so a new algorithm is one new file there. Any
other class registered with ``@register_agent`` (a user's, after its module is imported) joins them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module
from pathlib import Path

from ..rollout.plugins import decorated_classes

ALGORITHMS = Path(__file__).resolve().parent.parent / "algorithms"
PACKAGE = __package__.rpartition(".")[0]  # eapo_agents
_registered: dict[str, type] = {}


def register_agent(name: str) -> Callable[[type], type]:
    """Class decorator: make an agent available as ``--algo name`` (and in ``TrainConfig(algo=name)``)."""

    def register(cls: type) -> type:
        _registered[name] = cls
        cls.name = name
        return cls

    return register


@cache
def built_in() -> dict[str, str]:
    """``{name: module}`` of every ``@register_agent("name")`` class in ``agents/algorithms/``."""
    return decorated_classes(ALGORITHMS, f"{PACKAGE}.algorithms", "register_agent")


def agent_names(engine: str | None = None) -> list[str]:
    """Every agent's name, or those that ``engine`` trains (``engines_of``)."""
    names = sorted({*built_in(), *_registered})
    return [name for name in names if engine is None or engine in engines_of(agent_class(name))]


def agent_class(name: str) -> type:
    """The agent registered as ``name``; a ``ValueError`` naming the choices otherwise."""
    if name not in _registered:
        if name not in built_in():
            raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(agent_names())}")
        import_module(built_in()[name])  # importing the module registers the class
    return _registered[name]


def engines_of(cls: type) -> tuple[str, ...]:
    """The engines a class declares it runs on (its own ``engines``, not inherited: a subclass that
    changes the update must say again that another engine can run it); ``native`` by default."""
    return cls.__dict__.get("engines", ("native",))


def summary(cls: type) -> str:
    """The first paragraph of the agent's docstring, on one line: its description in ``--help`` and in
    ``compare``'s table."""
    paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split()).rstrip(".")
