"""LUFFY: GRPO groups that mix the policy's rollouts with off-policy expert solutions.

Yan et al., "Learning to Reason under Off-Policy Guidance" (LUFFY, 2025; code on verl). Each
group of G episodes of a problem holds G - n of the policy's own rollouts and n off-policy
traces (LUFFY: 1 of 8, n = ``--off-policy-traces``). Advantages are GRPO's, over the mixed
group, so the trace lifts the group exactly where every rollout failed. On a trace's tokens
(o_t = 1) the clipped ratio is replaced by the shaped probability, with no clipping::

    L = -sum_t w_t [ (1 - o_t) min(r_t A_i, clip(r_t, 1 - eps_low, 1 + eps_high) A_i)
                     +      o_t  f(pi_theta(y_t)) A_i ]                f(p) = p / (p + gamma)

LUFFY's defaults, kept: gamma = 0.1 (``--off-policy-shaping``), one trace per group, no KL term.
Where ours differs: the trace is the problem's reference solution played through the environment
by a teacher (``rollout.teacher``; LUFFY used DeepSeek-R1's solutions), so with n > 1 the n traces
are the same; the loss aggregation is GRPO's option (token-level by default, as LUFFY's); LUFFY's
entropy and clip-higher settings of its released configs are not copied. The policy never consults
(the query tag is locked), so a trace is the only outside help.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch

from ..rollout.episode import Episode
from ..rollout.teacher import teacher_episode
from ..training.batch import TokenBatch
from ..training.config import SettingError, option
from ..training.environments import make_env
from ..training.registry import register_agent
from .grpo import GRPOAgent, GRPOOptions, all_fail_shares
from .policy_gradient import shaped_probability


@dataclass
class LUFFYOptions(GRPOOptions):
    """LUFFY's own options."""

    off_policy_traces: int = option(1, "n: off-policy expert traces in each group of G", at_least=1)
    off_policy_shaping: float = option(0.1, "gamma of f(pi) = pi / (pi + gamma) on trace tokens", above=0)

    def check_config(self, config) -> None:
        """The group keeps at least one of the policy's own rollouts."""
        super().check_config(config)
        if self.off_policy_traces >= config.group_size:
            raise SettingError(
                "off_policy_traces",
                f"expected an integer < --group-size {config.group_size} (the group keeps the policy's "
                f"own rollouts), got {self.off_policy_traces!r}",
            )


def is_off_policy(episode: Episode) -> bool:
    return bool(episode.info.get("off_policy"))


@register_agent("luffy")
class LUFFYAgent(GRPOAgent):
    """LUFFY: off-policy reference solutions mixed into each GRPO group, with shaped weights.

    G - n rollouts and n traces per problem; the trace tokens are learned through f(pi), unclipped."""

    Options = LUFFYOptions

    @cached_property
    def trace_env(self):
        """The environment the teacher plays the reference solutions in (training split, experts off)."""
        config = self.config
        return make_env(config, "train", config.train_difficulties, 0.0)

    def training_groups(self, step: int) -> list[list[Episode]]:
        """G - n of the policy's rollouts of each problem, then n reference-solution traces."""
        traces = self.options.off_policy_traces
        groups = self.collect_groups(step, self.config.problems_per_step, self.config.group_size - traces)
        for group in groups:
            trace = self.off_policy_trace(group[0].problem_id)
            group.extend(trace for _ in range(traces))
        return groups

    def off_policy_trace(self, problem_id: str) -> Episode:
        reset = {"seed": 0, "options": {"problem_id": problem_id}}
        trace = teacher_episode(self.trace_env, self.tokenizer, reset, np.random.default_rng(0))
        trace.info = {**trace.info, "off_policy": True}
        return trace

    def rollout_metrics(self, episodes: list[Episode]) -> dict[str, float]:
        """The policy's own rollouts' statistics (the traces are not its play)."""
        return super().rollout_metrics([e for e in episodes if not is_off_policy(e)])

    @classmethod
    def group_metrics(cls, groups: list[list[Episode]]) -> dict[str, float]:
        """The all-fail shares of the policy's own rollouts: where the traces were the only signal."""
        return all_fail_shares([[e for e in group if not is_off_policy(e)] for group in groups])

    def loss_inputs(self, batch: TokenBatch, episodes: list[Episode]) -> dict[str, torch.Tensor]:
        """o_t: 1 on the policy-mask tokens of the off-policy traces."""
        rows = torch.tensor([is_off_policy(e) for e in episodes], device=batch.loss_mask.device)
        return {"off_policy": batch.loss_mask * rows[:, None]}

    def objective(
        self, logp: torch.Tensor, chunk: TokenBatch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """GRPO's clipped surrogate on the rollouts' tokens, f(pi) A on the traces', as above."""
        off = chunk.extras["off_policy"]
        loss, stats = super().objective(logp, replace(chunk, weights=chunk.weights * (1 - off)))
        shaped = shaped_probability(logp, self.options.off_policy_shaping) * chunk.advantages
        stats["off_policy_term"] = (shaped * chunk.weights * off).sum()
        return loss - stats["off_policy_term"], stats
