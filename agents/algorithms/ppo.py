"""PPO with a learned critic and token-level GAE on the terminal reward.

Rewards: r_t = 0 on every policy token except the episode's last, which gets R
(minus ``kl_beta * (logp_t - ref_t)`` per token when a reference is used).
Over the policy tokens only (expert replies are skipped, not stepped through)::

    delta_t = r_t + gamma * V(s_t+1) - V(s_t)
    A_t     = delta_t + gamma * lambda * A_t+1          (GAE), returns G_t = A_t + V(s_t)
    L_pi    = -sum_t w_t * min(ratio_t A_t, clip(ratio_t, 1 - eps_low, 1 + eps_high) A_t)
    L_V     = 1/2 sum_t w_t * max((V_t - G_t)^2, (V_old,t + clip(V_t - V_old,t, +-c) - G_t)^2)
    L       = L_pi + value_coef * L_V

The critic is a linear value head on the policy's last hidden state
(``--critic head``) or a separate copy of the starting model with its own head
(``--critic separate``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..training.batch import TokenBatch, policy_logprobs
from ..training.config import option
from ..training.registry import register_agent
from .policy_gradient import (
    PolicyGradientAgent,
    PolicyGradientOptions,
    clipped_surrogate,
)


@dataclass
class PPOOptions(PolicyGradientOptions):
    """PPO's own options."""

    gamma: float = option(1.0, "discount over policy tokens", at_least=0, at_most=1)
    gae_lambda: float = option(0.95, "lambda of generalised advantage estimation", at_least=0, at_most=1)
    value_coef: float = option(0.5, "weight of the value loss", at_least=0)
    value_clip: float = option(0.2, "value predictions move at most this much from the rollout's", above=0)
    critic: str = option(
        "head", "head: a value head on the policy; separate: a copy of the model", ("head", "separate")
    )


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Advantages and returns over the masked positions of each row, right to left."""
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        on = mask[:, t] > 0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        step_advantage = delta + gamma * lam * running
        advantages[:, t] = torch.where(on, step_advantage, 0.0)
        running = torch.where(on, step_advantage, running)
        next_value = torch.where(on, values[:, t], next_value)
    return advantages, (advantages + values) * mask


def terminal_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Place each episode's reward on its last policy token."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask > 0, positions, -1).max(dim=1).values
    per_token = torch.zeros_like(mask)
    rows = torch.arange(len(mask), device=mask.device)[last >= 0]
    per_token[rows, last[last >= 0]] = rewards.to(mask)[last >= 0]
    return per_token


@register_agent("ppo")
class PPOAgent(PolicyGradientAgent):
    """PPO with a value head and GAE, no consult action.

    One episode per problem, a critic, GAE advantages; the query tag is locked."""

    Options = PPOOptions

    def __init__(self, model, tokenizer, config) -> None:
        super().__init__(model, tokenizer, config)
        self.critic_trunk = copy.deepcopy(model) if self.options.critic == "separate" else None
        hidden = model.config.hidden_size
        parameter = next(model.parameters())
        self.value_head = nn.Linear(hidden, 1).to(device=parameter.device, dtype=parameter.dtype)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        extra = list(self.value_head.parameters())
        if self.critic_trunk is not None:
            extra += list(self.critic_trunk.parameters())
        self.optimizer.add_param_group({"params": extra})

    def forward(self, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of the targets and the critic's value of each state."""
        if self.critic_trunk is None:
            logp, hidden = policy_logprobs(self.model, batch, self.config.temperature, hidden=True)
        else:
            logp = policy_logprobs(self.model, batch, self.config.temperature)
            _, hidden = policy_logprobs(self.critic_trunk, batch, hidden=True)
        return logp, self.value_head(hidden).squeeze(-1).float()

    def train_step(self, step: int) -> dict[str, float]:
        config, options = self.config, self.options
        groups = self.collect_groups(step, config.problems_per_step * config.group_size, 1)
        episodes = [group[0] for group in groups]
        batch = self.pack(episodes)
        mask = batch.loss_mask
        with torch.no_grad():
            logp, old_values = self.per_token(batch, self.forward)
            old_logp, gap = self.old_logprobs(batch, logp, episodes)
            rewards = terminal_rewards(torch.tensor([e.reward for e in episodes]), mask)
            if self.reference is not None:
                rewards -= options.kl_beta * (logp - self.logprobs(self.reference, batch)) * mask
            advantages, returns = gae(rewards, old_values, mask, options.gamma, options.gae_lambda)
            on = mask > 0
            advantages = torch.where(
                on, (advantages - advantages[on].mean()) / (advantages[on].std() + 1e-6), 0.0
            )
        batch = replace(
            batch,
            old_logprobs=old_logp,
            advantages=advantages,
            extras={"old_values": old_values, "returns": returns},
        )
        stats = self.update(batch, self.loss)
        return {**self.rollout_metrics(episodes), **gap, **stats, "trained_episodes": float(len(episodes))}

    def loss(self, chunk: TokenBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_pi + value_coef * L_V of one micro-batch, as in the module docstring."""
        options = self.options
        logp, values = self.forward(chunk)
        surrogate, clipped = clipped_surrogate(
            logp, chunk.old_logprobs, chunk.advantages, options.clip_low, options.clip_high
        )
        policy_loss = -(surrogate * chunk.weights).sum()
        old_values, returns = chunk.extras["old_values"], chunk.extras["returns"]
        clipped_values = old_values + (values - old_values).clamp(-options.value_clip, options.value_clip)
        value_error = torch.maximum((values - returns) ** 2, (clipped_values - returns) ** 2)
        value_loss = 0.5 * (value_error * chunk.weights).sum()
        stats = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "clip_fraction": (clipped.float() * chunk.share).sum(),
        }
        return policy_loss + options.value_coef * value_loss, stats

    def state_dict(self) -> dict:
        state = {**super().state_dict(), "value_head": self.value_head.state_dict()}
        if self.critic_trunk is not None:
            state["critic_trunk"] = self.critic_trunk.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.value_head.load_state_dict(state["value_head"])
        if self.critic_trunk is not None:
            self.critic_trunk.load_state_dict(state["critic_trunk"])
