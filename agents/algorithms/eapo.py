"""EAPO: GRPO on the expert-enabled environment (Expert-Assisted Policy Optimization, arXiv 2509.23730).

What differs from GRPO (``grpo.py``) is the training environment:

- a query is answered with probability rho_s (``--acceptance``; the paper's 1/s by default),
  where s is the policy-update count, so help fades as training goes on;
- up to K queries per turn go to the experts in parallel (``--max-queries``, ``--parallel-experts``);
- each query may cost ``--consult-cost``; the turn budget starts at ``--max-turns`` (10, as in the
  paper) and shrinks toward the evaluation budget ``--final-turns`` (``--turn-schedule``, linear over
  the run by default), so the policy is not trained for a horizon it will not have;
- linear and cosine schedules run over ``--schedule-steps`` updates, fixed at the run's first start
  (its ``--steps`` by default), so a resume to more steps continues them where they are;
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
s counts updates from 1, and ``--acceptance-scale`` (10 by default: rho = min(1, 10 / s), the unit
the preregistered validation runs chose on the training split; 1 is the paper's literal 1/s) stretches
the unit; the turn budget
shrinks linearly to 1 turn, the evaluation budget under locked consultation; no
consultation penalty; no KL term (``--kl-beta 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eapo_gym.schedules import parse_schedule

from ..rollout.episode import Episode
from ..training.batch import TokenBatch, loss_weights
from ..training.config import ScheduledOptions, TrainConfig, check_schedules, option
from ..training.environments import TrainingEpisodes
from ..training.registry import register_agent
from ..training.run import replay_rng
from .grpo import GRPOAgent, GRPOOptions
from .policy_gradient import shaped_probability


@dataclass
class EAPOOptions(GRPOOptions, ScheduledOptions):
    """EAPO's own options."""

    acceptance: str = option(
        "inverse", "rho in training: inverse (1/s), constant:R, linear, exponential, cosine"
    )
    acceptance_scale: float = option(
        10.0, "inverse schedule: rho = min(1, scale / s), the unit of s (10: chosen on validation)", above=0
    )
    turn_schedule: str = option(
        "linear",
        "how the turn budget shrinks to --final-turns: linear, inverse, cosine, constant:1",
    )
    help_only_failing: bool = option(False, "help only groups whose own (unaided) rollouts all fail")
    expert_token_coef: float = option(
        0.0, "c > 0: also learn expert reply tokens off-policy (LUFFY-style)", at_least=0
    )
    expert_shaping: float = option(0.1, "gamma of the off-policy shaping f(pi) = pi / (pi + gamma)", above=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_schedules(self, "acceptance", "turn_schedule")


def help_kind(episode: Episode) -> str:
    """``helped`` (an accepted expert reply), ``declined`` (asked, never answered) or ``unasked``."""
    if episode.info.get("accepted", 0) > 0:
        return "helped"
    return "declined" if episode.info.get("consults", 0) > 0 else "unasked"


def help_shares(groups: list[list[Episode]]) -> dict[str, float]:
    """Where the help goes in one step's groups: the shares of helped and declined episodes
    (``help_kind``), each kind's accuracy (absent when there are none), and ``rescued_groups``, the
    share of groups whose every correct episode was helped, so that without the replies they would
    have had no signal."""
    kinds: dict[str, list[Episode]] = {"helped": [], "declined": [], "unasked": []}
    for episode in (e for group in groups for e in group):
        kinds[help_kind(episode)].append(episode)
    count = sum(len(part) for part in kinds.values())
    shares = {
        "helped_episodes": len(kinds["helped"]) / count,
        "declined_episodes": len(kinds["declined"]) / count,
        "rescued_groups": sum(
            any(e.info.get("correct") for e in group)
            and all(help_kind(e) == "helped" for e in group if e.info.get("correct"))
            for group in groups
        )
        / len(groups),
    }
    for kind, part in kinds.items():
        if part:
            shares[f"{kind}_accuracy"] = sum(bool(e.info.get("correct")) for e in part) / len(part)
    return shares


def shaped_expert_term(logp: torch.Tensor, weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_t u_t max(A, 0) f(pi(e_t)) over expert-reply tokens (``weights`` = u_t max(A, 0))."""
    return (shaped_probability(logp, gamma) * weights).sum()


@register_agent("eapo")
class EAPOAgent(GRPOAgent):
    """EAPO: K=3 parallel queries, the next step per turn, rho_s, turn schedule.

    GRPO whose training episodes may consult experts, admitted with an annealed probability."""

    Options = EAPOOptions
    engines = ("native", "trl")

    @classmethod
    def training_episodes(cls, config: TrainConfig) -> TrainingEpisodes:
        """Consulting episodes: rho_s and the turn budget on the options' schedules."""
        options = config.options
        length = options.schedule_length(config)
        return TrainingEpisodes(
            consults=True,
            acceptance=parse_schedule(options.acceptance, length, options.acceptance_scale),
            turn_share=parse_schedule(options.turn_schedule, length),
            help_only_failing=options.help_only_failing,
        )

    def training_groups(self, step: int) -> list[list[Episode]]:
        """With ``help_only_failing``: every group unaided first, consultation locked; the groups with
        no correct episode play again with the experts, on fresh seeds."""
        if not self.episode_rules.help_only_failing:
            return super().training_groups(step)
        problems, group_size = self.config.problems_per_step, self.config.group_size
        unaided = {**self.episode_rules.reset_options(step, self.config), "acceptance": 0.0}
        groups = self.collect_groups(step, problems, group_size, unaided, lock_queries=True)
        failing = [g for g, group in enumerate(groups) if not any(e.info.get("correct") for e in group)]
        self.helped_share = len(failing) / len(groups)  # this process's share of the groups
        if failing:
            seeds = replay_rng(self.config.seed, step, self.rank).integers(
                2**31, size=len(failing) * group_size
            )
            problem_ids = [groups[g][0].problem_id for g in failing for _ in range(group_size)]
            replayed = self.play(step, [int(seed) for seed in seeds], problem_ids)
            for k, g in enumerate(failing):
                groups[g] = replayed[k * group_size : (k + 1) * group_size]
        return groups

    @classmethod
    def group_metrics(cls, groups: list[list[Episode]]) -> dict[str, float]:
        """GRPO's all-fail shares, and where the help goes (``help_shares``)."""
        return {**super().group_metrics(groups), **help_shares(groups)}

    def rollout_metrics(self, episodes) -> dict[str, float]:
        metrics = super().rollout_metrics(episodes)
        if self.options.help_only_failing:
            metrics["helped_groups"] = self.helped_share
        return metrics

    def loss_inputs(self, batch: TokenBatch, episodes: list[Episode]) -> dict[str, torch.Tensor]:
        """With ``expert_token_coef``: u_t max(A_i, 0) on the expert-reply tokens."""
        if self.options.expert_token_coef <= 0:
            return {}
        return {"expert_weights": loss_weights(batch.expert_mask) * batch.advantages.clamp(min=0)}

    def objective(
        self, logp: torch.Tensor, chunk: TokenBatch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats = super().objective(logp, chunk)
        if "expert_weights" in chunk.extras:
            weights = chunk.extras["expert_weights"]
            stats["expert_term"] = shaped_expert_term(logp, weights, self.options.expert_shaping)
            loss = loss - self.options.expert_token_coef * stats["expert_term"]
        return loss, stats
