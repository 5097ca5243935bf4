"""EAPO: GRPO on the expert-enabled environment (Expert-Assisted Policy Optimization, arXiv 2509.23730).

What differs from GRPO (``grpo.py``) is the training environment:

- a query is answered with probability rho_s (``--acceptance``; the paper's 1/s by default),
  where s is the policy-update count, so help fades as training goes on;
- up to K queries per turn go to the experts in parallel (``--max-queries``, ``--parallel-experts``);
- each query may cost ``--consult-cost``; the turn budget starts at ``--max-turns`` (10, as in the
  paper) and shrinks toward the evaluation budget ``--final-turns`` (``--turn-schedule``, linear over
  the run by default), so the policy is not trained for a horizon it will not have;
- ``--help-only-failing`` (off by default, Guide-GRPO-style): each group first plays unaided, with
  consultation locked; only groups whose own rollouts all fail play again with the experts.

Expert replies enter the context only: their tokens have loss mask 0, so the
surrogate is GRPO's, taken over the policy's own tokens. Evaluation runs with
the experts off.

An option, off by default (``expert_token_coef`` = c > 0): learn the experts'
reply tokens e_t as off-policy targets, with LUFFY's shaped importance weight in
place of a ratio, only where the episode did better than its group::

    L_EAPO   = L_GRPO - c * sum_t u_t * max(A_i, 0) * f(pi_theta(e_t)),   f(p) = p / (p + gamma)

with u_t = 1 / (number of expert-reply tokens in the batch).

Left open by the paper, with our defaults: tags ``<expert>``/``<answer>``/``<reply>``;
s counts updates from 1 (``--acceptance-scale`` stretches the unit); the turn budget
shrinks linearly to 1 turn, the evaluation budget under locked consultation; no
consultation penalty; no KL term (``--kl-beta 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from eapo_agents.algorithms.grpo import GRPOAgent, GRPOOptions
from eapo_agents.rollout.sampling import LocalBackend
from eapo_agents.training.batch import TokenBatch, loss_weights
from eapo_agents.training.config import SettingError, option
from eapo_agents.training.registry import register_agent
from eapo_gym.vector import ExpertMathVectorEnv

SCHEDULES = ("constant", "inverse", "linear", "exponential", "cosine")


@dataclass
class EAPOOptions(GRPOOptions):
    """EAPO's own options."""

    acceptance: str = option(
        "inverse", "rho in training: inverse (1/s), constant:R, linear, exponential, cosine"
    )
    acceptance_scale: float = option(1.0, "inverse schedule: rho = min(1, scale / s), the unit of s", above=0)
    turn_schedule: str = option(
        "linear",
        "how the turn budget shrinks to --final-turns: linear (over --steps), inverse, cosine, constant:1",
    )
    help_only_failing: bool = option(False, "help only groups whose own (unaided) rollouts all fail")
    expert_token_coef: float = option(
        0.0, "c > 0: also learn expert reply tokens off-policy (LUFFY-style)", at_least=0
    )
    expert_shaping: float = option(0.1, "gamma of the off-policy shaping f(pi) = pi / (pi + gamma)", above=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("acceptance", "turn_schedule"):
            try:
                schedule_spec(getattr(self, name), steps=1)
            except ValueError as error:
                raise SettingError(name, str(error)) from None

    def acceptance_spec(self, steps: int) -> float | dict[str, Any]:
        """rho_s over a run of ``steps`` updates, as ``ExpertMathEnv(acceptance=...)`` takes it."""
        return schedule_spec(self.acceptance, steps, self.acceptance_scale)

    def turn_schedule_spec(self, steps: int) -> float | dict[str, Any]:
        """The turn budget's share of ``max_turns`` over a run of ``steps`` updates."""
        return schedule_spec(self.turn_schedule, steps)


def schedule_spec(text: str, steps: int, scale: float = 1.0) -> float | dict[str, Any]:
    """``constant:0.5`` -> 0.5; ``inverse`` -> min(1, scale / s); ``exponential[:decay]``; other schedule
    names go from 1 to 0 over the run's ``steps``. A ``ValueError`` names the choices."""
    name, _, value = text.partition(":")
    try:
        number = float(value) if value else None
    except ValueError:
        name = ""
    if name not in SCHEDULES:
        raise ValueError(
            f"a schedule is one of {', '.join(SCHEDULES)} (constant:R, exponential:D); got {text!r}"
        )
    if name == "constant":
        return 1.0 if number is None else number
    if name == "inverse":
        return {"type": "inverse", "scale": scale}
    if name == "exponential":
        return {"type": "exponential", "decay": number or 0.95}
    return {"type": name, "total_steps": steps}


def shaped_expert_term(logp: torch.Tensor, weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_t u_t max(A, 0) f(pi(e_t)) over expert-reply tokens (``weights`` = u_t max(A, 0))."""
    probability = logp.exp()
    return (probability / (probability + gamma) * weights).sum()


@register_agent("eapo")
class EAPOAgent(GRPOAgent):
    """GRPO whose training episodes may consult experts, admitted with an annealed probability."""

    Options = EAPOOptions
    consults_in_training = True

    def acceptance(self) -> float | dict[str, Any]:
        return self.options.acceptance_spec(self.config.steps)

    def turn_schedule(self) -> float | dict[str, Any]:
        return self.options.turn_schedule_spec(self.config.steps)

    @cached_property
    def unaided(self) -> tuple[ExpertMathVectorEnv, LocalBackend]:
        """Envs and backend of the groups' own rollouts under ``help_only_failing``: consultation locked."""
        return self.make_envs(0.0, self.turn_schedule()), self.make_backend(lock_queries=True)

    def collect_groups(self, step: int, problems: int, group_size: int, envs=None, backend=None):
        """With ``help_only_failing``: every group unaided first; the groups with no correct episode
        play again with the experts, on fresh seeds."""
        if not self.options.help_only_failing:
            return super().collect_groups(step, problems, group_size, envs, backend)
        groups = super().collect_groups(step, problems, group_size, *self.unaided)
        failing = [g for g, group in enumerate(groups) if not any(e.info.get("correct") for e in group)]
        self.helped_share = len(failing) / problems
        if failing:
            seeds = np.random.default_rng([self.config.seed, step, 1]).integers(
                2**31, size=len(failing) * group_size
            )
            problem_ids = [groups[g][0].problem_id for g in failing for _ in range(group_size)]
            replayed = self.play(step, [int(seed) for seed in seeds], problem_ids)
            for k, g in enumerate(failing):
                groups[g] = replayed[k * group_size : (k + 1) * group_size]
        return groups

    def rollout_metrics(self, episodes) -> dict[str, float]:
        metrics = super().rollout_metrics(episodes)
        if self.options.help_only_failing:
            metrics["helped_groups"] = self.helped_share
        return metrics

    def extra_inputs(self, batch: TokenBatch, advantages: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.options.expert_token_coef <= 0:
            return {}
        return {"expert": loss_weights(batch.expert_mask) * advantages.clamp(min=0)}

    def objective(self, logp: torch.Tensor, rows: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats = super().objective(logp, rows)
        if rows.get("expert") is not None:
            stats["expert_term"] = shaped_expert_term(logp, rows["expert"], self.options.expert_shaping)
            loss = loss - self.options.expert_token_coef * stats["expert_term"]
        return loss, stats
