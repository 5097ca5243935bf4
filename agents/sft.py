"""Supervised baselines: SFT on reference solutions, and distillation of the expert's solutions.

    L = -sum_t w_t log pi_theta(y_t | x, y_<t),   w_t = 1 / (policy tokens in the batch) on teacher tokens

Traces are episodes of the real environment written by a teacher (``agents.traces``),
so expert replies inside consulting traces are masked exactly as in RL.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from agents.base import BaseAgent, register_agent
from agents.environments import acceptance_spec, make_env
from agents.rollout import Episode
from agents.tokens import loss_weights, pack_episodes, policy_logprobs
from agents.traces import distill_episode, teacher_episode


@register_agent("sft")
class SFTAgent(BaseAgent):
    """Plain supervised warm start on reference solutions.

    A ``consult_fraction`` of the traces first asks the experts (1-2 turns of 1..K
    queries) and continues from the replies: this is how the tiny preset's warm
    start teaches the consultation protocol.
    """

    @cached_property
    def trace_env(self):
        return make_env(self.config, "train", self.config.train_difficulties, acceptance_spec(self.config))

    def traces(self, step: int) -> list[Episode]:
        rng = self.rng(step)
        source = self.trace_env.problems
        episodes = []
        for _ in range(self.config.sft_batch_size):
            reset = {
                "seed": int(rng.integers(2**31)),
                "options": {"problem_id": source[int(rng.integers(len(source)))].id},
            }
            episodes.append(self.trace(reset, rng))
        return [e for e in episodes if e is not None]

    def trace(self, reset: dict, rng: np.random.Generator) -> Episode | None:
        consult = rng.random() < self.config.consult_fraction
        turns = int(rng.integers(1, 3)) if consult else 0
        queries = int(rng.integers(1, self.config.max_queries + 1))
        return teacher_episode(self.trace_env, self.tokenizer, reset, turns, queries)

    def train_step(self, step: int) -> dict[str, float]:
        episodes = self.traces(step)
        if not episodes:
            return {"loss": 0.0, "trained_episodes": 0.0}
        batch = pack_episodes(episodes, self.tokenizer.pad_token_id, self.device)
        weights = loss_weights(batch.loss_mask, "token")
        total = 0.0
        for chunk, rows in self.micro_batches(batch, weights=weights):
            loss = -(policy_logprobs(self.model, chunk) * rows["weights"]).sum()
            loss.backward()
            total += loss.item()
        grad_norm = self.apply_gradients()
        return {
            "loss": total,
            "grad_norm": grad_norm,
            "trained_episodes": float(len(episodes)),
            "policy_tokens": float(batch.loss_mask.sum()),
        }


@register_agent("distill")
class DistillAgent(SFTAgent):
    """The paper's expert distillation: SFT on the experts' own solutions, kept only when verified correct.

    With the reference expert these equal the reference solutions; a noisy or
    model expert gives different (filtered) data.
    """

    def trace(self, reset: dict, rng: np.random.Generator) -> Episode | None:
        return distill_episode(self.trace_env, self.tokenizer, reset, rng)
