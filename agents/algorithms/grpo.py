"""GRPO with DAPO's refinements: group-relative advantages and a clipped surrogate.

For a group of G episodes of one problem with rewards r_1..r_G::

    A_i      = (r_i - mean(r)) / (std(r) + eps)          (no division when scale_rewards=False: Dr. GRPO)
    L_clip   = -sum_t w_t * min(ratio_t A_i, clip(ratio_t, 1 - eps_low, 1 + eps_high) A_i)
    L        = L_clip + beta * sum_t w_t * KL_t                      (ratio_t and k3 KL_t: policy_gradient.py)

w_t are the aggregation weights (``loss_weights``) over policy tokens only;
prompt, expert-reply and notice tokens have w_t = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..rollout.episode import Episode
from ..training.batch import TokenBatch, policy_logprobs
from ..training.config import SettingError, option
from ..training.registry import register_agent
from .policy_gradient import (
    PolicyGradientAgent,
    PolicyGradientOptions,
    chunk_gap,
    clipped_surrogate,
    drawn_share,
    k3_kl,
)

EPS = 1e-6


@dataclass
class GRPOOptions(PolicyGradientOptions):
    """GRPO's own options."""

    scale_rewards: bool = option(True, "divide advantages by the group's std (false: Dr. GRPO)")
    dynamic_sampling: bool = option(False, "drop groups whose rewards are all equal (DAPO)")

    def check_config(self, config) -> None:
        """Advantages are relative to the group: one episode per problem has no mean or std to compare to."""
        super().check_config(config)
        if config.group_size < 2:
            raise SettingError(
                "group_size",
                f"expected an integer >= 2 for --algo {config.algo} (advantages are relative to the "
                f"group), got {config.group_size!r}",
            )


def all_fail_shares(groups: list[list[Episode]], failing: list[bool] | None = None) -> dict[str, float]:
    """The share of groups with no correct episode (no signal toward correctness), overall and per
    level; ``failing`` says which groups failed where their episodes alone cannot (help replaced some)."""
    if failing is None:
        failing = [not any(e.info.get("correct") for e in group) for group in groups]
    shares = {"all_fail_groups": sum(failing) / len(groups)}
    for level in sorted({group[0].info.get("difficulty") for group in groups} - {None}):
        at_level = [
            fail for fail, group in zip(failing, groups, strict=True) if group[0].info["difficulty"] == level
        ]
        shares[f"all_fail_groups/d{level}"] = sum(at_level) / len(at_level)
    return shares


def group_advantages(rewards: torch.Tensor, scale: bool) -> torch.Tensor:
    """A = r - mean over the group (dim 1), divided by the group's std when ``scale``."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True) + EPS) if scale else centred


@register_agent("grpo")
class GRPOAgent(PolicyGradientAgent):
    """Self-exploratory RL (GRPO with DAPO's clip-higher), no consult action.

    Groups of G episodes per problem; the query tag is locked."""

    Options = GRPOOptions
    engines = ("native", "trl")

    def train_step(self, step: int) -> dict[str, float]:
        """Play the step's groups, score them relative to each other, and update on the policy's tokens."""
        groups = self.training_groups(step)
        rewards = torch.tensor([[e.reward for e in group] for group in groups])
        informative = rewards.std(dim=1) > 0
        metrics = self.rollout_metrics([e for group in groups for e in group])
        metrics["all_equal_groups"] = 1.0 - informative.float().mean().item()
        metrics.update(self.group_metrics(groups))
        advantages = group_advantages(rewards, self.options.scale_rewards)
        keep = informative if self.options.dynamic_sampling else torch.ones_like(informative)
        trained = [
            (e, a)
            for g, group in enumerate(groups)
            if keep[g]
            for e, a in zip(group, advantages[g], strict=True)
        ]
        if not trained:
            return {**metrics, "loss": 0.0, "trained_episodes": 0.0}
        episodes = [e for e, _ in trained]
        batch = self.pack(episodes)
        advantages = torch.stack([a for _, a in trained]).to(self.device)[:, None]
        with torch.no_grad():
            if self.single_pass:  # pi_old is the update's own pass (objective), its gap measured there
                old, gap = None, {}
            else:
                old, gap = self.old_logprobs(batch, self.logprobs(self.model, batch), episodes)
            ref = self.logprobs(self.reference, batch) if self.reference is not None else None
        batch = replace(
            batch, advantages=advantages.expand_as(batch.loss_mask), old_logprobs=old, ref_logprobs=ref
        )
        gap_share = {"gap_share": drawn_share(batch)} if self.single_pass else {}
        batch = replace(batch, extras={**gap_share, **self.loss_inputs(batch, episodes)})
        return {**metrics, **gap, **self.update(batch, self.loss), "trained_episodes": float(len(trained))}

    def training_groups(self, step: int) -> list[list[Episode]]:
        """What is trained on: ``problems_per_step`` groups of ``group_size`` episodes of one problem
        each (EAPO replays failing groups with help, LUFFY adds off-policy traces)."""
        return self.collect_groups(step, self.config.problems_per_step, self.config.group_size)

    @classmethod
    def group_metrics(cls, groups: list[list[Episode]]) -> dict[str, float]:
        """Statistics of the step's groups for the training log: the all-fail shares (both engines)."""
        return all_fail_shares(groups)

    def loss_inputs(self, batch: TokenBatch, episodes: list[Episode]) -> dict[str, torch.Tensor]:
        """Per-target inputs of ``objective`` beyond GRPO's (``TokenBatch.extras``), for the batch
        of ``episodes`` with its advantages and log-probabilities set; none for GRPO."""
        return {}

    def loss(self, chunk: TokenBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.objective(policy_logprobs(self.model, chunk, self.config.temperature), chunk)

    def objective(
        self, logp: torch.Tensor, chunk: TokenBatch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_clip (+ beta KL) of one micro-batch, as in the module docstring (pi_old: ``logp`` itself,
        detached, under ``single_pass``)."""
        old = logp.detach() if chunk.old_logprobs is None else chunk.old_logprobs
        surrogate, clipped = clipped_surrogate(
            logp, old, chunk.advantages, self.options.clip_low, self.options.clip_high
        )
        loss = -(surrogate * chunk.weights).sum()
        stats = {"clip_fraction": (clipped.float() * chunk.share).sum()}
        if "gap_share" in chunk.extras:
            stats.update(chunk_gap(logp, chunk, chunk.extras["gap_share"]))
        if chunk.ref_logprobs is not None:
            stats["kl"] = (k3_kl(logp, chunk.ref_logprobs) * chunk.weights).sum()
            loss = loss + self.options.kl_beta * stats["kl"]
        return loss, stats
