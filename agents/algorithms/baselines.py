"""Evaluation-only baselines of the paper's table: the untrained policy, and the expert workflow."""

from __future__ import annotations

from dataclasses import dataclass

from eapo_gym.env import ExpertMathEnv

from ..rollout.teacher import TEACHER_QUERY
from ..training.agent import BaseAgent
from ..training.config import Options, option
from ..training.registry import register_agent


@register_agent("base")
class BaseModelAgent(BaseAgent):
    """The warm-started policy, no training."""

    trains = False

    def train_step(self, step: int) -> dict[str, float]:
        return {}


def scripted_queries(env: ExpertMathEnv) -> str:
    """A first turn of K "What is the next step?" queries, whatever the problem."""
    protocol = env.protocol
    return f"{protocol.query_open}{TEACHER_QUERY}{protocol.query_close}" * protocol.max_queries


@dataclass
class WorkflowOptions(Options):
    """The workflow's own option."""

    queries: str = option(
        "policy",
        "policy: the policy writes its own queries (the paper's workflow); scripted: a fixed first "
        "turn of K 'What is the next step?' queries (the earlier ablation)",
        ("policy", "scripted"),
    )


@register_agent("workflow")
class ExpertWorkflowAgent(BaseModelAgent):
    """The base policy with K experts consulted at inference.

    The paper's inference-time workflow: the untrained policy plays with every query answered
    (rho = 1), asking what it wants in its own words, over the whole turn budget (``--max-turns``)
    so that it can use the replies. ``--queries scripted`` replaces its first turn by a fixed one
    of K "What is the next step?" queries, the sub-questions it never wrote in training."""

    Options = WorkflowOptions
    eval_with_experts = True

    def __init__(self, model, tokenizer, config) -> None:
        super().__init__(model, tokenizer, config)
        self.first_turn = scripted_queries if self.options.queries == "scripted" else None
