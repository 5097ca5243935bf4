"""ExpertMathEnv and ExpertMathVectorEnv instances built from a training configuration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eapo_gym.env import DEFAULT_INSTRUCTIONS, DEFAULT_PROMPT_TEMPLATE, ExpertMathEnv
from eapo_gym.experts import ReferenceExpert, make_expert
from eapo_gym.schedules import ConstantSchedule, Schedule, turn_budget
from eapo_gym.vector import ExpertMathVectorEnv

from .config import TrainConfig

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
    config: TrainConfig, split: str, difficulties: Sequence[int], acceptance: float
) -> dict[str, Any]:
    """ExpertMathEnv keywords for ``config``; ``acceptance`` 0 declines every query (experts off).
    Training episodes get their own rho and turn budget at reset (``TrainingEpisodes``).

    Empty ``difficulties`` means every level (and is required for sources without levels)."""
    return {
        "problems": config.problems,
        "split": split,
        "difficulty": list(difficulties) or None,
        "experts": make_experts(config),
        "acceptance": acceptance,
        "max_turns": config.max_turns,
        "consult_cost": config.consult_cost,
        "max_queries": config.max_queries,
        "parallel_experts": config.parallel_experts,
        "expert_timeout": config.expert_timeout,
        "prompt_template": SHORT_PROMPT if config.short_prompt else DEFAULT_PROMPT_TEMPLATE,
        "instructions": "" if config.short_prompt else DEFAULT_INSTRUCTIONS,
        "max_turn_tokens": config.max_new_tokens,
    }


def make_env(
    config: TrainConfig, split: str, difficulties: Sequence[int], acceptance: float
) -> ExpertMathEnv:
    """One text-mode env (teacher traces and tooling)."""
    return ExpertMathEnv(**env_settings(config, split, difficulties, acceptance))


def make_vector_env(
    config: TrainConfig,
    count: int,
    split: str,
    difficulties: Sequence[int],
    acceptance: float = 0.0,
) -> ExpertMathVectorEnv:
    """``count`` text-mode envs stepped together, one expert round per turn (rollouts)."""
    return ExpertMathVectorEnv(count, **env_settings(config, split, difficulties, acceptance))


@dataclass(frozen=True)
class TrainingEpisodes:
    """How an algorithm's training episodes are played, by either engine (``Agent.training_episodes``).

    ``consults``: the policy may write the query tag (else it is locked, self-exploratory RL);
    ``acceptance``: rho_s; ``turn_share``: the share of the turns above ``final_turns`` that the
    budget keeps at update s; ``help_only_failing``: groups play unaided first and only those with
    no correct episode play again with the experts.
    """

    consults: bool = False
    acceptance: Schedule = ConstantSchedule(0.0)
    turn_share: Schedule = ConstantSchedule(1.0)
    help_only_failing: bool = False

    def reset_options(self, step: int, config: TrainConfig) -> dict[str, Any]:
        """The ``reset`` options of an episode at update ``step``: its rho and turn budget."""
        budget = turn_budget(self.turn_share(step), config.max_turns, config.final_turns)
        return {"acceptance": self.acceptance(step), "max_turns": budget}
