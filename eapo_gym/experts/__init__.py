"""Experts the policy can consult, and how to build them from names or callables."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eapo_gym.experts.base import BaseExpert, Expert, ExpertQuery, ExpertReply, FunctionExpert
from eapo_gym.experts.dispatch import ExpertPanel
from eapo_gym.experts.model import TransformersExpert
from eapo_gym.experts.openai import OpenAIExpert
from eapo_gym.experts.reference import ReferenceExpert
from eapo_gym.experts.symbolic import SymbolicExpert

EXPERT_NAMES: dict[str, Callable[[], Expert]] = {
    "reference": ReferenceExpert,
    "symbolic": SymbolicExpert,
}

ExpertSpec = str | Expert | Callable[[ExpertQuery], str]


def make_expert(spec: ExpertSpec) -> Expert:
    """An expert from a name, an ``Expert`` or a callable.

    Names: ``reference``, ``symbolic``, ``model:<local dir>`` (a transformers
    model) and ``openai:<model>@<base url>`` (an OpenAI-compatible server).
    """
    if isinstance(spec, str):
        kind, _, target = spec.partition(":")
        if kind == "model" and target:
            return TransformersExpert(target)
        if kind == "openai" and target:
            return OpenAIExpert.from_spec(target)
        if spec not in EXPERT_NAMES:
            raise ValueError(
                f"unknown expert {spec!r}; choose one of {sorted(EXPERT_NAMES)}, "
                "model:DIR or openai:MODEL@URL"
            )
        return EXPERT_NAMES[spec]()
    if isinstance(spec, Expert):
        return spec
    if callable(spec):
        return FunctionExpert(spec)
    raise TypeError(f"cannot build an expert from {spec!r}")


def make_experts(specs: ExpertSpec | Sequence[ExpertSpec] | None) -> list[Expert]:
    """A list of experts; ``None``, ``"none"`` or ``[]`` means no experts."""
    if specs is None or specs == "none":
        return []
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        specs = [specs]
    return [make_expert(spec) for spec in specs]


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
    "make_expert",
    "make_experts",
]
