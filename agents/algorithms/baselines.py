"""Evaluation-only baselines of the paper's table: the untrained policy, and the expert workflow."""

from __future__ import annotations

from eapo_gym.env import ExpertMathEnv

from ..rollout.teacher import TEACHER_QUERY
from ..training.agent import BaseAgent
from ..training.registry import register_agent


@register_agent("base")
class BaseModelAgent(BaseAgent):
    """The warm-started policy, no training."""

    trains = False

    def train_step(self, step: int) -> dict[str, float]:
        return {}


@register_agent("workflow")
class ExpertWorkflowAgent(BaseModelAgent):
    """The base policy with K experts consulted at inference.

    A hard-coded first turn sends K queries, every query is answered (rho = 1), then the policy
    continues on its own."""

    eval_with_experts = True

    @staticmethod
    def first_turn(env: ExpertMathEnv) -> str:
        protocol = env.protocol
        return f"{protocol.query_open}{TEACHER_QUERY}{protocol.query_close}" * protocol.max_queries
