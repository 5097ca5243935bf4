"""Experts the policy can consult, and how to build them from names or callables."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from eapo_gym.experts.base import BaseExpert, Expert, ExpertQuery, ExpertReply, FunctionExpert
from eapo_gym.experts.dispatch import ExpertPanel
from eapo_gym.experts.model import TransformersExpert
from eapo_gym.experts.openai import OpenAIExpert
from eapo_gym.experts.reference import ReferenceExpert
from eapo_gym.experts.symbolic import SymbolicExpert

EXPERTS: dict[str, Callable[[], Expert]] = {
    "reference": ReferenceExpert,
    "reference-successive": partial(ReferenceExpert, reveal="successive", name="reference-successive"),
    "symbolic": SymbolicExpert,
}

ExpertSpec = str | Expert | Callable[[ExpertQuery], str]


def register_expert(name: str) -> Callable[[Callable], Callable]:
    """Decorator: make an expert class, a factory or a callable ``fn(query) -> str`` usable by ``name``.

    ``--experts name`` then works on the command line once the module is imported
    (``--plugin my_module``). A class or factory is called without arguments; a
    function taking a query is wrapped as a ``FunctionExpert``.
    """

    def register(target: Callable) -> Callable:
        EXPERTS[name] = target if isinstance(target, type) else lambda: _as_expert(target, name)
        return target

    return register


def make_expert(spec: ExpertSpec) -> Expert:
    """An expert from a name, an ``Expert`` or a callable.

    Names: ``reference``, ``reference-successive``, ``symbolic``, a registered name, ``model:<local dir>``
    (a transformers model), ``openai:<model>@<base url>`` (an OpenAI-compatible
    server), or ``package.module:attribute`` (an ``Expert``, an expert class, or
    a callable ``fn(query) -> str``).
    """
    if isinstance(spec, str):
        kind, _, target = spec.partition(":")
        if kind == "model" and target:
            return TransformersExpert(target)
        if kind == "openai" and target:
            return OpenAIExpert.from_spec(target)
        if spec in EXPERTS:
            return EXPERTS[spec]()
        if target:
            return _as_expert(_import_attribute(spec), spec)
        raise ValueError(f"unknown expert {spec!r}; {EXPERT_CHOICES}")
    return _as_expert(spec, None)


def make_experts(specs: ExpertSpec | Sequence[ExpertSpec] | None) -> list[Expert]:
    """A list of experts; ``None``, ``"none"`` or ``[]`` means no experts."""
    if specs is None or specs == "none":
        return []
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        specs = [specs]
    return [make_expert(spec) for spec in specs]


def check_expert_spec(spec: str) -> None:
    """Raise ``ValueError`` naming the choices if ``spec`` cannot name an expert; loads no model."""
    kind, _, target = spec.partition(":")
    if kind == "model" and target:
        if not (Path(target) / "config.json").exists():
            raise ValueError(f"expert {spec!r}: {target} is not a model directory (no config.json)")
    elif kind == "openai" and target:
        OpenAIExpert.from_spec(target)  # its URL and options (no request is sent)
    elif spec not in EXPERTS:
        if not target:
            raise ValueError(f"unknown expert {spec!r}; {EXPERT_CHOICES}")
        _import_attribute(spec)


EXPERT_CHOICES = (
    "choose reference, symbolic, a registered name, model:DIR, openai:MODEL@URL or module:function"
)


def _as_expert(target: Any, name: str | None) -> Expert:
    if isinstance(target, Expert):
        return target
    if isinstance(target, type):
        return target()
    if callable(target):
        return FunctionExpert(target, name=name)
    raise TypeError(f"cannot build an expert from {target!r}")


def _import_attribute(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"expert {spec!r}: cannot import {attribute!r} from {module_name!r} ({error})"
        ) from None


__all__ = [
    "BaseExpert",
    "Expert",
    "ExpertPanel",
    "ExpertQuery",
    "ExpertReply",
    "FunctionExpert",
    "OpenAIExpert",
    "ReferenceExpert",
    "SymbolicExpert",
    "TransformersExpert",
    "check_expert_spec",
    "make_expert",
    "make_experts",
    "register_expert",
]
