"""EAPO: GRPO on the expert-enabled environment (Expert-Assisted Policy Optimization, arXiv 2509.23730).

What differs from GRPO is only the training environment:

- a query is answered with probability rho_s (``--acceptance``; the paper's 1/s by default),
  where s is the policy-update count, so help fades as training goes on;
- up to K queries per turn go to the experts in parallel (``--max-queries``, ``--parallel-experts``);
- each query may cost ``--consult-cost``; the turn budget is ``--max-turns`` (10, as in the paper).

Expert replies enter the context only: their tokens have loss mask 0, so the
surrogate below is GRPO's, taken over the policy's own tokens. Evaluation runs
with the experts off.

Left open by the paper, with our defaults: tags ``<expert>``/``<answer>``/``<reply>``;
s counts updates from 1 (``--acceptance-scale`` stretches the unit); no
consultation penalty; no KL term (``--kl-beta 0``).
"""

from __future__ import annotations

from agents.base import register_agent
from agents.grpo import GRPOAgent


@register_agent("eapo")
class EAPOAgent(GRPOAgent):
    """GRPO whose training episodes may consult experts, admitted with an annealed probability."""

    uses_experts = True
