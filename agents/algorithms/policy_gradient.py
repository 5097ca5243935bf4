"""What GRPO, PPO and EAPO share: the clipped surrogate, the k3 KL estimate, and their common options.

ratio_t  = pi_theta(y_t | x, y_<t) / pi_old(y_t | x, y_<t)
surr_t   = min(ratio_t A_t, clip(ratio_t, 1 - eps_low, 1 + eps_high) A_t)
KL_t     = exp(ref_t - logp_t) - (ref_t - logp_t) - 1                        (k3, unbiased, >= 0)

pi_old (``old_logprobs``): ``trainer`` (default, as TRL) is the trainer's own forward pass over the
rollouts before the update, so the first pass's ratio is 1 (with one pass, mu = 1, that pass's own
log-probabilities, detached, are pi_old: ``single_pass``, no extra forward); ``sampler`` is the
log-probabilities the rollout's sampler reported (of pi / T, before top-p), the policy that actually
drew the tokens, so the ratio also corrects a sampler/trainer mismatch (a bf16 decoder's, say) and
clips where it is large. Either way every update logs that mismatch over the policy tokens,
``logprob_gap_mean`` and ``logprob_gap_max`` = |log pi_trainer - log pi_sampler|; choose ``sampler``
when it is not small.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..rollout.episode import Episode
from ..training.agent import BaseAgent, Loss
from ..training.batch import TokenBatch
from ..training.config import Options, SettingError, option


@dataclass
class PolicyGradientOptions(Options):
    """Options of every policy-gradient agent."""

    epochs_per_batch: int = option(1, "mu: gradient passes over each rollout batch", at_least=1)
    clip_low: float = option(0.2, "eps_low: the ratio is clipped below 1 - eps_low", at_least=0, at_most=1)
    clip_high: float = option(
        0.28, "eps_high: the ratio is clipped above 1 + eps_high (DAPO clip-higher)", at_least=0
    )
    kl_beta: float = option(
        0.0, "KL coefficient to the frozen start policy; 0 loads no reference model", at_least=0
    )
    loss_aggregation: str = option(
        "token", "token (DAPO), sequence (GRPO) or constant (Dr. GRPO)", ("token", "sequence", "constant")
    )
    loss_constant: int = option(
        0, "constant aggregation: L in 1 / (episodes x L); 0: max_new_tokens (TRL's dr_grpo divides by it)"
    )
    old_logprobs: str = option(
        "trainer",
        "pi_old of the ratio: trainer (recomputed before the update) or sampler (the rollout's)",
        ("trainer", "sampler"),
    )
    overlong: str = option(
        "filter", "filter: episodes cut off at max_context get no loss; none", ("filter", "none")
    )

    def check_config(self, config) -> None:
        """Log-probabilities are taken under logits / temperature, so greedy sampling (0) cannot train."""
        if config.temperature <= 0:
            raise SettingError(
                "temperature",
                f"expected a float > 0 for --algo {config.algo} (its loss divides logits by it; 0, greedy, "
                f"suits base, workflow, sft and distill), got {config.temperature!r}",
            )


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token min(ratio A, clip(ratio) A) and whether clipping was active."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * advantages
    return torch.minimum(unclipped, clipped), (clipped < unclipped)


def logprob_gap(trainer: torch.Tensor, sampler: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Mean and largest |trainer - sampler| log-probability over the masked (policy) tokens that a
    sampler drew (a teacher's tokens have NaN, no sampler log-probability)."""
    gap = (trainer - sampler).abs()[(mask > 0) & ~sampler.isnan()]
    if not gap.numel():
        return {"logprob_gap_mean": 0.0, "logprob_gap_max": 0.0}
    return {"logprob_gap_mean": gap.mean().item(), "logprob_gap_max": gap.max().item()}


def drawn_share(batch: TokenBatch) -> torch.Tensor:
    """1 / (policy tokens a sampler drew) on those tokens, 0 elsewhere: ``chunk_gap``'s mean weights."""
    drawn = ((batch.loss_mask > 0) & ~batch.sampled_logprobs.isnan()).float()
    return drawn / drawn.sum().clamp(min=1)


def chunk_gap(trainer: torch.Tensor, chunk: TokenBatch, share: torch.Tensor) -> dict[str, torch.Tensor]:
    """``logprob_gap`` of one micro-batch (``share``: its ``drawn_share``): parts of the mean that sum
    over micro-batches, and a ``_max`` that ``BaseAgent.optimise`` takes the largest of."""
    gap = (trainer.detach() - chunk.sampled_logprobs.nan_to_num()).abs() * (share > 0)
    return {"logprob_gap_mean": (gap * share).sum(), "logprob_gap_max": gap.max()}


def shaped_probability(logp: torch.Tensor, gamma: float) -> torch.Tensor:
    """LUFFY's policy shaping f(pi) = pi / (pi + gamma) of off-policy tokens, in place of a ratio
    (the token's probability under the expert that wrote it is taken as 1); its gradient
    gamma / (pi + gamma)^2 * grad pi favours the tokens the policy finds unlikely."""
    probability = logp.exp()
    return probability / (probability + gamma)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token unbiased, non-negative estimate of KL(pi_theta || pi_ref)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


class PolicyGradientAgent(BaseAgent):
    """A frozen copy of the start policy when ``kl_beta > 0``, the overlong filter, and the update
    with the options' epochs and loss aggregation."""

    Options = PolicyGradientOptions

    def __init__(self, model, tokenizer, config) -> None:
        super().__init__(model, tokenizer, config)
        self.reference = (
            copy.deepcopy(model).eval().requires_grad_(False) if self.options.kl_beta > 0 else None
        )

    def pack(self, episodes: list[Episode]) -> TokenBatch:
        batch = super().pack(episodes)
        if self.options.overlong == "filter":
            cut = torch.tensor([bool(e.info.get("cut_off")) for e in episodes], device=self.device)
            batch.loss_mask[cut] = 0.0
            batch.expert_mask[cut] = 0.0
        return batch

    @property
    def single_pass(self) -> bool:
        """Whether pi_old is pi_theta at the update's only pass (mu = 1, ``old_logprobs`` trainer): the
        loss then takes it from that pass (``TokenBatch.old_logprobs`` None), with no forward before."""
        return self.options.epochs_per_batch == 1 and self.options.old_logprobs == "trainer"

    def old_logprobs(
        self, batch: TokenBatch, trainer: torch.Tensor, episodes: list[Episode]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """pi_old for the ratio (the ``old_logprobs`` option) from the trainer's log-probabilities of
        the ``episodes`` before the update, and their gap to the sampler's. Under ``sampler``, tokens
        no sampler drew (a teacher's, NaN) take the trainer's: their ratio starts at 1."""
        sampled = batch.sampled_logprobs
        old = trainer
        if self.options.old_logprobs == "sampler":
            old = torch.where(sampled.isnan(), trainer, sampled)
        return old, logprob_gap(trainer, sampled, batch.loss_mask)

    def update(self, batch: TokenBatch, loss: Loss) -> dict[str, float]:
        """The options' passes over ``batch`` (its loss inputs set), aggregated as they say."""
        options = self.options
        constant = options.loss_constant or self.config.max_new_tokens
        return self.optimise(batch, loss, options.epochs_per_batch, options.loss_aggregation, constant)
