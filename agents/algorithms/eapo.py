"""EAPO: GRPO on the expert-enabled environment (Expert-Assisted Policy Optimization, arXiv 2509.23730).

What differs from GRPO (``grpo.py``) is the training environment:

- a query is answered with probability rho_s (``--acceptance``; the paper's 1/s by default),
  where s is the policy-update count, so help fades as training goes on;
- up to K queries per turn go to the experts in parallel (``--max-queries``, ``--parallel-experts``);
- each query may cost ``--consult-cost``; the turn budget is ``--max-turns`` (10, as in the paper).

Expert replies enter the context only: their tokens have loss mask 0, so the
surrogate is GRPO's, taken over the policy's own tokens. Evaluation runs with
the experts off.

An option, off by default (``expert_token_coef`` = c > 0): learn the experts'
reply tokens e_t as off-policy targets, with LUFFY's shaped importance weight in
place of a ratio, only where the episode did better than its group::

    L_EAPO   = L_GRPO - c * sum_t u_t * max(A_i, 0) * f(pi_theta(e_t)),   f(p) = p / (p + gamma)

with u_t = 1 / (number of expert-reply tokens in the batch).

Left open by the paper, with our defaults: tags ``<expert>``/``<answer>``/``<reply>``;
s counts updates from 1 (``--acceptance-scale`` stretches the unit); no
consultation penalty; no KL term (``--kl-beta 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from eapo_agents.algorithms.grpo import GRPOAgent, GRPOOptions
from eapo_agents.training.batch import TokenBatch, loss_weights
from eapo_agents.training.config import option
from eapo_agents.training.registry import register_agent

SCHEDULES = ("constant", "inverse", "linear", "exponential", "cosine")


@dataclass
class EAPOOptions(GRPOOptions):
    """EAPO's own options."""

    acceptance: str = option(
        "inverse", "rho during training: inverse (1/s), constant:R, linear, exponential, cosine"
    )
    acceptance_scale: float = option(1.0, "inverse schedule: rho = min(1, scale / s), the unit of s")
    expert_token_coef: float = option(0.0, "c > 0: also learn expert reply tokens off-policy (LUFFY-style)")
    expert_shaping: float = option(0.1, "gamma of the off-policy shaping f(pi) = pi / (pi + gamma)")

    def __post_init__(self) -> None:
        name, _, value = self.acceptance.partition(":")
        if name not in SCHEDULES:
            raise ValueError(
                f"acceptance must be one of {', '.join(SCHEDULES)} (constant:R); got {self.acceptance!r}"
            )
        if value:
            float(value)


def acceptance_spec(options: EAPOOptions, steps: int) -> float | dict[str, Any]:
    """``constant:0.5`` -> 0.5; ``inverse`` -> 1/s scaled by ``acceptance_scale``; other schedule names
    anneal from 1 to 0 over the run's ``steps``."""
    name, _, value = options.acceptance.partition(":")
    if name == "constant":
        return float(value or 1.0)
    if name == "inverse":
        return {"type": "inverse", "scale": options.acceptance_scale}
    if name == "exponential":
        return {"type": "exponential", "decay": float(value or 0.95)}
    return {"type": name, "total_steps": steps}


def shaped_expert_term(logp: torch.Tensor, weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_t u_t max(A, 0) f(pi(e_t)) over expert-reply tokens (``weights`` = u_t max(A, 0))."""
    probability = logp.exp()
    return (probability / (probability + gamma) * weights).sum()


@register_agent("eapo")
class EAPOAgent(GRPOAgent):
    """GRPO whose training episodes may consult experts, admitted with an annealed probability."""

    Options = EAPOOptions

    def acceptance(self) -> float | dict[str, Any]:
        return acceptance_spec(self.options, self.config.steps)

    def extra_inputs(self, batch: TokenBatch, advantages: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.options.expert_token_coef <= 0:
            return {}
        return {"expert": loss_weights(batch.expert_mask) * advantages.clamp(min=0)}

    def objective(self, logp: torch.Tensor, rows: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, stats = super().objective(logp, rows)
        if rows.get("expert") is not None:
            stats["expert_term"] = shaped_expert_term(logp, rows["expert"], self.options.expert_shaping)
            loss = loss - self.options.expert_token_coef * stats["expert_term"]
        return loss, stats
