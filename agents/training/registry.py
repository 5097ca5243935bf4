"""Agents by name: the built-in ones as ``module:Class`` entry points (imported on first use, like
Gymnasium's registry), and any class registered with ``@register_agent``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

BUILT_IN = {
    "grpo": "eapo_agents.algorithms.grpo:GRPOAgent",
    "ppo": "eapo_agents.algorithms.ppo:PPOAgent",
    "eapo": "eapo_agents.algorithms.eapo:EAPOAgent",
    "sft": "eapo_agents.algorithms.sft:SFTAgent",
    "distill": "eapo_agents.algorithms.sft:DistillAgent",
    "base": "eapo_agents.algorithms.baselines:BaseModelAgent",
    "workflow": "eapo_agents.algorithms.baselines:ExpertWorkflowAgent",
}
_registered: dict[str, type] = {}


def register_agent(name: str) -> Callable[[type], type]:
    """Class decorator: make an agent available as ``--algo name`` (and in ``TrainConfig(algo=name)``)."""

    def register(cls: type) -> type:
        _registered[name] = cls
        cls.name = name
        return cls

    return register


def agent_names() -> list[str]:
    return sorted({*BUILT_IN, *_registered})


def agent_class(name: str) -> type:
    """The agent registered as ``name``; a ``ValueError`` naming the choices otherwise."""
    if name not in _registered:
        if name not in BUILT_IN:
            raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(agent_names())}")
        module, _, attribute = BUILT_IN[name].partition(":")
        getattr(import_module(module), attribute)  # importing the module registers the class
    return _registered[name]
