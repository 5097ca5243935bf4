"""GRPO with DAPO's refinements: group-relative advantages and a clipped surrogate.

For a group of G episodes of one problem with rewards r_1..r_G::

    A_i      = (r_i - mean(r)) / (std(r) + eps)          (no division when scale_rewards=False: Dr. GRPO)
    ratio_t  = pi_theta(y_t | x, y_<t) / pi_old(y_t | x, y_<t)
    L_clip   = -sum_t w_t * min(ratio_t A_i, clip(ratio_t, 1 - eps_low, 1 + eps_high) A_i)
    L        = L_clip + beta * sum_t w_t * KL_t,   KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1   (k3)

w_t are the aggregation weights (``agents.tokens.loss_weights``) over policy
tokens only; prompt, expert-reply and notice tokens have w_t = 0.

An option for EAPO (``expert_token_coef`` = c > 0, off by default): learn the
experts' reply tokens e_t as off-policy targets, LUFFY's shaped importance
weight in place of a ratio, only where the episode did better than its group::

    L_expert = -c * sum_t u_t * max(A_i, 0) * f(pi_theta(e_t)),   f(p) = p / (p + gamma)

with u_t = 1 / (number of expert-reply tokens in the batch).
"""

from __future__ import annotations

import torch

from agents.base import BaseAgent, episode_metrics, register_agent
from agents.rollout import Episode
from agents.tokens import loss_weights, pack_episodes, policy_logprobs

EPS = 1e-6


def group_advantages(rewards: torch.Tensor, scale: bool) -> torch.Tensor:
    """A = r - mean over the group (dim 1), divided by the group's std when ``scale``."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True) + EPS) if scale else centred


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token min(ratio A, clip(ratio) A) and whether clipping was active."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * advantages
    return torch.minimum(unclipped, clipped), (clipped < unclipped)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token unbiased, non-negative estimate of KL(pi_theta || pi_ref)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def shaped_expert_term(logp: torch.Tensor, weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_t u_t max(A, 0) f(pi(e_t)) over expert-reply tokens (``weights`` = u_t max(A, 0))."""
    probability = logp.exp()
    return (probability / (probability + gamma) * weights).sum()


@register_agent("grpo")
class GRPOAgent(BaseAgent):
    """Self-exploratory RL: groups of G episodes per problem; experts decline every query."""

    def train_step(self, step: int) -> dict[str, float]:
        config = self.config
        groups = self.collect_groups(step, config.problems_per_step, config.group_size)
        episodes = [e for group in groups for e in group]
        rewards = torch.tensor([[e.reward for e in group] for group in groups])
        advantages = group_advantages(rewards, config.scale_rewards)
        informative = rewards.std(dim=1) > 0
        metrics = episode_metrics(episodes)
        metrics["all_equal_groups"] = 1.0 - informative.float().mean().item()
        keep = informative if config.dynamic_sampling else torch.ones_like(informative)
        trained = [
            (e, a)
            for g, group in enumerate(groups)
            if keep[g]
            for e, a in zip(group, advantages[g], strict=True)
        ]
        if not trained:
            return {**metrics, "loss": 0.0, "trained_episodes": 0.0}
        metrics.update(self.update([e for e, _ in trained], torch.stack([a for _, a in trained])))
        return metrics

    def update(self, episodes: list[Episode], advantages: torch.Tensor) -> dict[str, float]:
        """``epochs_per_batch`` passes of the clipped-surrogate loss over the episodes."""
        config = self.config
        batch = pack_episodes(episodes, self.tokenizer.pad_token_id, self.device)
        if config.overlong == "filter":
            cut = torch.tensor([bool(e.info.get("cut_off")) for e in episodes], device=self.device)
            batch.loss_mask[cut] = 0.0
        weights = loss_weights(batch.loss_mask, config.loss_aggregation)
        token_share = loss_weights(batch.loss_mask, "token")
        advantages = advantages.to(self.device)[:, None]
        expert = None
        if config.expert_token_coef > 0:
            expert = loss_weights(batch.expert_mask) * advantages.clamp(min=0)
        with torch.no_grad():
            old_logp = self.logprobs_in_chunks(self.model, batch) if config.epochs_per_batch > 1 else None
            ref_logp = self.logprobs_in_chunks(self.reference, batch) if self.reference is not None else None
        totals = {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "grad_norm": 0.0}
        share = 1.0 / config.epochs_per_batch
        for _ in range(config.epochs_per_batch):
            chunks = self.micro_batches(
                batch,
                weights=weights,
                share=token_share,
                old=old_logp,
                ref=ref_logp,
                advantages=advantages,
                expert=expert,
            )
            for chunk, rows in chunks:
                logp = policy_logprobs(self.model, chunk, config.temperature)
                old = rows["old"] if rows["old"] is not None else logp.detach()
                surrogate, clipped = clipped_surrogate(
                    logp, old, rows["advantages"], config.clip_low, config.clip_high
                )
                loss = -(surrogate * rows["weights"]).sum()
                if rows["ref"] is not None:
                    kl = (k3_kl(logp, rows["ref"]) * rows["weights"]).sum()
                    loss = loss + config.kl_beta * kl
                    totals["kl"] += kl.item() * share
                if rows["expert"] is not None:
                    expert_term = shaped_expert_term(logp, rows["expert"], config.expert_shaping)
                    loss = loss - config.expert_token_coef * expert_term
                loss.backward()
                totals["loss"] += loss.item() * share
                totals["clip_fraction"] += (clipped.float() * rows["share"]).sum().item() * share
            totals["grad_norm"] += self.apply_gradients() * share
        return {**totals, "trained_episodes": float(len(episodes))}
