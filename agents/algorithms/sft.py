"""Supervised baselines: SFT on reference solutions, and distillation of the expert's solutions.

    L = -sum_t w_t log pi_theta(y_t | x, y_<t),   w_t = 1 / (policy tokens in the batch) on teacher tokens

Traces are episodes of the real environment written by a teacher (``eapo_agents.rollout.teacher``),
so expert replies inside consulting traces are masked exactly as in RL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ..rollout.episode import Episode
from ..rollout.teacher import distill_episode, teacher_episode
from ..training.agent import BaseAgent
from ..training.batch import TokenBatch, policy_logprobs
from ..training.config import Options, option
from ..training.environments import make_env
from ..training.registry import register_agent


@dataclass
class SFTOptions(Options):
    """Supervised options (sft, distill, and the tiny preset's warm start)."""

    sft_batch_size: int = option(64, "traces per update", at_least=1)
    consult_fraction: float = option(
        0.0, "share of traces that consult the experts before solving", at_least=0, at_most=1
    )
    trace_acceptance: float = option(
        1.0, "probability that a trace's query is answered", at_least=0, at_most=1
    )


@register_agent("sft")
class SFTAgent(BaseAgent):
    """SFT on the reference solutions of the training problems.

    A ``consult_fraction`` of the traces first asks the experts for help (1-3
    turns of 1..K sub-questions) and continues from the replies, or alone after
    "unavailable": this is how the tiny preset's warm start teaches the
    consultation protocol (``eapo_agents.rollout.teacher.teacher_episode``).
    """

    Options = SFTOptions
    supervised = True

    @cached_property
    def trace_env(self):
        config = self.config
        return make_env(config, "train", config.train_difficulties, self.options.trace_acceptance)

    def traces(self, step: int) -> list[Episode]:
        rng = self.rng(step)
        source = self.trace_env.problems
        episodes = []
        for _ in range(self.options.sft_batch_size):
            reset = {
                "seed": int(rng.integers(2**31)),
                "options": {"problem_id": source[int(rng.integers(len(source)))].id},
            }
            episodes.append(self.trace(reset, rng))
        return [e for e in episodes if e is not None]

    def trace(self, reset: dict, rng: np.random.Generator) -> Episode | None:
        consult = rng.random() < self.options.consult_fraction
        return teacher_episode(self.trace_env, self.tokenizer, reset, rng, consult)

    def train_step(self, step: int) -> dict[str, float]:
        episodes = self.traces(step)
        if not episodes:
            return {"loss": 0.0, "trained_episodes": 0.0}
        batch = self.pack(episodes)
        stats = self.optimise(batch, self.loss)
        return {
            **stats,
            "trained_episodes": float(len(episodes)),
            "policy_tokens": float(batch.loss_mask.sum()),
            "sequence_tokens": float(sum(len(episode.context) for episode in episodes)),
        }

    def loss(self, chunk: TokenBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return -(policy_logprobs(self.model, chunk) * chunk.weights).sum(), {}


@register_agent("distill")
class DistillAgent(SFTAgent):
    """SFT on the expert's own verified solutions (the paper's expert distillation).

    Traces are kept only when verified correct. With the reference expert these equal the reference
    solutions; a noisy or model expert gives different (filtered) data.
    """

    def trace(self, reset: dict, rng: np.random.Generator) -> Episode | None:
        return distill_episode(self.trace_env, self.tokenizer, reset, rng)
