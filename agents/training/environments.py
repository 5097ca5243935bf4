"""ExpertMathEnv and ExpertMathVectorEnv instances built from a training configuration."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from eapo_agents.training.config import TrainConfig
from eapo_gym.env import DEFAULT_INSTRUCTIONS, DEFAULT_PROMPT_TEMPLATE, ExpertMathEnv
from eapo_gym.experts import ReferenceExpert, make_expert
from eapo_gym.vector import ExpertMathVectorEnv

SHORT_PROMPT = "{question}\n"


@cache
def shared_expert(spec: str):
    """One instance per spec for every env of the process (a model expert is loaded once)."""
    return make_expert(spec)


def make_experts(config: TrainConfig) -> list:
    """The configured experts; the reference expert's two reveal modes take ``expert_noise``."""
    reference = {"reference": "next", "reference-successive": "successive"}
    return [
        ReferenceExpert(config.expert_noise, reveal=reference[name], name=name)
        if name in reference
        else shared_expert(name)
        for name in config.experts.split(",")
        if name
    ]


def env_settings(
    config: TrainConfig, split: str, difficulties: Sequence[int], acceptance: Any, turn_schedule: Any = 1.0
) -> dict[str, Any]:
    """ExpertMathEnv keywords for ``config``; ``acceptance`` 0 declines every query (experts off);
    ``turn_schedule`` shrinks the turn budget from ``max_turns`` to ``final_turns``.

    Empty ``difficulties`` means every level (and is required for sources without levels)."""
    return {
        "problems": config.problems,
        "split": split,
        "difficulty": list(difficulties) or None,
        "experts": make_experts(config),
        "acceptance": acceptance,
        "max_turns": config.max_turns,
        "turn_schedule": turn_schedule,
        "final_turns": config.final_turns,
        "consult_cost": config.consult_cost,
        "max_queries": config.max_queries,
        "parallel_experts": config.parallel_experts,
        "expert_timeout": config.expert_timeout,
        "prompt_template": SHORT_PROMPT if config.short_prompt else DEFAULT_PROMPT_TEMPLATE,
        "instructions": "" if config.short_prompt else DEFAULT_INSTRUCTIONS,
        "max_turn_tokens": config.max_new_tokens,
    }


def make_env(config: TrainConfig, split: str, difficulties: Sequence[int], acceptance: Any) -> ExpertMathEnv:
    """One text-mode env (teacher traces and tooling)."""
    return ExpertMathEnv(**env_settings(config, split, difficulties, acceptance))


def make_vector_env(
    config: TrainConfig,
    count: int,
    split: str,
    difficulties: Sequence[int],
    acceptance: Any,
    turn_schedule: Any = 1.0,
) -> ExpertMathVectorEnv:
    """``count`` text-mode envs stepped together, one expert round per turn (rollouts)."""
    return ExpertMathVectorEnv(count, **env_settings(config, split, difficulties, acceptance, turn_schedule))
