"""Adaptive hints: GRPO whose reference-solution hint grows when reward falls and shrinks when it rises.

After G²RPO-A (Guo et al., "G²RPO-A: Guided Group Relative Policy Optimization with Adaptive
Guidance", 2025). Like ``hints`` (annealed hints), every training prompt ends with the first
reference steps (the environment's ``hint`` reset option, never the last step), but the hint's
share h follows the reward instead of a fixed schedule. After the rollouts of update s, with mean
reward R_s and its running mean M (an exponential average over the earlier updates)::

    h <- clip(h + delta, 0, 1)   if R_s < M      (the problems got harder for the policy: more help)
    h <- clip(h - delta, 0, 1)   if R_s > M      (it is doing better: less help)
    M <- decay * M + (1 - decay) * R_s

Defaults and where ours differs: h starts at 0.5 of the steps and moves by delta = 0.1 per update;
G²RPO-A compares with the mean of a window of recent steps and tunes the guidance length in tokens
of its reference trajectories; ours uses the exponential average (``--reward-decay``) and counts
steps of the reference solution. Evaluation has no hint, whatever h has reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..rollout.episode import Episode
from ..training.config import option
from ..training.registry import register_agent
from .grpo import GRPOAgent
from .hints import HintStartOptions


@dataclass
class AdaptiveHintOptions(HintStartOptions):
    """The adaptive hint's options."""

    hint_delta: float = option(0.1, "delta: how far the share moves after each update", above=0, at_most=1)
    reward_decay: float = option(
        0.9, "decay of the running mean each update's reward is compared with", at_least=0, at_most=1
    )


def adapted_share(share: float, reward: float, running: float | None, delta: float) -> float:
    """h after an update whose mean reward is ``reward``, given the running mean before it."""
    if running is None or reward == running:
        return share
    return min(1.0, max(0.0, share + (delta if reward < running else -delta)))


@register_agent("adaptive_hints")
class AdaptiveHintAgent(GRPOAgent):
    """Adaptive hints (G²RPO-A): a solution hint that grows when reward falls, shrinks when it rises.

    GRPO groups whose prompts end with a share of the solution steps that follows the reward."""

    Options = AdaptiveHintOptions

    def __init__(self, model, tokenizer, config) -> None:
        super().__init__(model, tokenizer, config)
        self.hint_share = self.options.hint_start
        self.running_reward: float | None = None

    def training_groups(self, step: int) -> list[list[Episode]]:
        """The groups played with the current hint; then h and the running mean move."""
        config, options = self.config, self.options
        reset = {**self.episode_rules.reset_options(step, config), "hint": self.hint_share}
        groups = self.collect_groups(step, config.problems_per_step, config.group_size, reset)
        episodes = [e for group in groups for e in group]
        reward = sum(e.reward for e in episodes) / len(episodes)
        self.played_share = self.hint_share
        self.hint_share = adapted_share(self.hint_share, reward, self.running_reward, options.hint_delta)
        previous, decay = self.running_reward, options.reward_decay
        self.running_reward = reward if previous is None else decay * previous + (1 - decay) * reward
        return groups

    def rollout_metrics(self, episodes: list[Episode]) -> dict[str, float]:
        return {**super().rollout_metrics(episodes), "hint_share": self.played_share}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "hint_share": self.hint_share, "running_reward": self.running_reward}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.hint_share, self.running_reward = state["hint_share"], state["running_reward"]
