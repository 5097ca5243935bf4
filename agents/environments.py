"""Building ExpertMathEnv instances from a training configuration."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from agents.config import TrainConfig
from eapo_gym.env import DEFAULT_INSTRUCTIONS, DEFAULT_PROMPT_TEMPLATE, ExpertMathEnv
from eapo_gym.experts import ReferenceExpert, make_expert

SHORT_PROMPT = "{question}\n"


def acceptance_spec(config: TrainConfig) -> float | dict[str, Any]:
    """``constant:0.5`` → 0.5; ``inverse`` → 1/s scaled by ``acceptance_scale``; other schedule names
    anneal from 1 to 0 over the run's ``steps``."""
    name, _, value = config.acceptance.partition(":")
    if name == "constant":
        return float(value or 1.0)
    if name == "inverse":
        return {"type": "inverse", "scale": config.acceptance_scale}
    if name == "exponential":
        return {"type": "exponential", "decay": float(value or 0.95)}
    return {"type": name, "total_steps": config.steps}


@cache
def shared_expert(spec: str):
    """One instance per spec for every env of the process (a model expert is loaded once)."""
    return make_expert(spec)


def make_experts(config: TrainConfig) -> list:
    return [
        ReferenceExpert(noise=config.expert_noise) if name == "reference" else shared_expert(name)
        for name in config.experts.split(",")
        if name
    ]


def make_env(
    config: TrainConfig, split: str, difficulties: Sequence[int], acceptance: float | dict[str, Any]
) -> ExpertMathEnv:
    """A text-mode env for ``config``; ``acceptance`` 0 declines every query (experts off).

    Empty ``difficulties`` means every level (and is required for sources without levels)."""
    return ExpertMathEnv(
        problems=config.problems,
        split=split,
        difficulty=list(difficulties) or None,
        experts=make_experts(config),
        acceptance=acceptance,
        max_turns=config.max_turns,
        consult_cost=config.consult_cost,
        max_queries=config.max_queries,
        parallel_experts=config.parallel_experts,
        prompt_template=SHORT_PROMPT if config.short_prompt else DEFAULT_PROMPT_TEMPLATE,
        instructions="" if config.short_prompt else DEFAULT_INSTRUCTIONS,
        max_turn_tokens=config.max_new_tokens,
    )
