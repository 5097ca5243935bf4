"""Help when the whole group fails: GRPO that replays all-fail groups with a hint, trained toward the
context without it.

After Guide-GRPO (Nath et al., "Adaptive Guidance Accelerates Reinforcement Learning of Reasoning
Models", 2025) and SAGE (2026). Every group first plays unaided (the query tag locked, as GRPO).
Only a group whose G rollouts all fail, so that GRPO would learn nothing from it, has ``m`` of its
rollouts (``--hinted-share`` of G) played again, on fresh seeds, with a hint: the first reference
steps after the prompt (the environment's ``hint`` reset option, ``--hint``). The hinted rollouts
are trained in the context the policy will have at evaluation, without the hint, with the sampler's
log-probabilities as pi_old (``--hint-context unhinted``, Guide-GRPO's correction)::

    r_t = pi_theta(y_t | x, y_<t) / pi_sample(y_t | x, hint, y_<t)

in GRPO's clipped surrogate, so a hinted success lifts the unhinted policy only as far as the clip
lets it. ``--hint-context hinted`` trains them in the context they were played in (no correction).

Defaults and where ours differs: the hint is half the reference steps, never the last (Guide-GRPO
gives guidance toward the reference solution; SAGE lets the policy write its own hint, which is
not built here); half of a failing group is replayed, so the group holds hinted and unhinted
rollouts of the same problem; EAPO's ``--help-only-failing`` is the same rule with expert
consultation in place of the hint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..rollout.episode import Episode
from ..training.batch import TokenBatch
from ..training.config import option
from ..training.registry import register_agent
from ..training.run import replay_rng
from .grpo import GRPOAgent, GRPOOptions, all_fail_shares


@dataclass
class GuideOptions(GRPOOptions):
    """The failing-group hint's options."""

    hint: float = option(0.5, "share of the reference steps in the hint (never the last)", above=0, at_most=1)
    hinted_share: float = option(
        0.5, "share of a failing group's rollouts replayed with the hint", above=0, at_most=1
    )
    hint_context: str = option(
        "unhinted",
        "unhinted: train hinted rollouts without the hint, pi_old the sampler's; hinted: as played",
        ("unhinted", "hinted"),
    )


def is_hinted(episode: Episode) -> bool:
    return episode.hint_length > 0


def without_hint(episode: Episode) -> Episode:
    """The episode as if played without its hint: the hint's ids removed from the prompt."""
    prompt = episode.prompt_ids[: len(episode.prompt_ids) - episode.hint_length]
    return dataclasses.replace(episode, prompt_ids=prompt, hint_length=0)


@register_agent("guide")
class GuideAgent(GRPOAgent):
    """Help when the whole group fails (Guide-GRPO, SAGE): all-fail groups replayed in part with a hint.

    Trained toward the context without the hint, with an importance correction."""

    Options = GuideOptions

    def training_groups(self, step: int) -> list[list[Episode]]:
        """Unaided groups; in each group with no correct episode, the last m rollouts replayed hinted."""
        config = self.config
        groups = super().training_groups(step)
        failing = [g for g, group in enumerate(groups) if not any(e.info.get("correct") for e in group)]
        replayed = math.ceil(self.options.hinted_share * config.group_size)
        if failing:
            seeds = replay_rng(config.seed, step, self.rank).integers(2**31, size=len(failing) * replayed)
            problem_ids = [groups[g][0].problem_id for g in failing for _ in range(replayed)]
            reset = {**self.episode_rules.reset_options(step, config), "hint": self.options.hint}
            hinted = self.play(step, [int(seed) for seed in seeds], problem_ids, reset)
            for k, g in enumerate(failing):
                groups[g][-replayed:] = hinted[k * replayed : (k + 1) * replayed]
        return groups

    @classmethod
    def group_metrics(cls, groups: list[list[Episode]]) -> dict[str, float]:
        """The all-fail shares of the unaided rollouts (the hinted groups, by the rule), and the
        hinted rollouts' accuracy (absent when none was hinted)."""
        hinted = [e for group in groups for e in group if is_hinted(e)]
        metrics = all_fail_shares(groups, failing=[any(map(is_hinted, group)) for group in groups])
        if hinted:
            metrics["hinted_accuracy"] = sum(bool(e.info.get("correct")) for e in hinted) / len(hinted)
        return metrics

    def pack(self, episodes: list[Episode]) -> TokenBatch:
        """Under ``hint_context unhinted``, hinted rollouts without their hint."""
        if self.options.hint_context == "unhinted":
            episodes = [without_hint(e) if is_hinted(e) else e for e in episodes]
        return super().pack(episodes)

    @property
    def single_pass(self) -> bool:
        """Under ``hint_context unhinted`` pi_old is not the trainer's own pass: never a single pass."""
        return super().single_pass and self.options.hint_context == "hinted"

    def old_logprobs(
        self, batch: TokenBatch, trainer: torch.Tensor, episodes: list[Episode]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Under ``hint_context unhinted``, the hinted rows' pi_old is their sampler's (with the hint);
        the gap statistics cover the other rows, whose contexts the sampler saw."""
        if self.options.hint_context == "hinted":
            return super().old_logprobs(batch, trainer, episodes)
        hinted = torch.tensor([is_hinted(e) for e in episodes], device=batch.loss_mask.device)[:, None]
        same_context = dataclasses.replace(batch, loss_mask=batch.loss_mask * ~hinted)
        old, gap = super().old_logprobs(same_context, trainer, episodes)
        return torch.where(hinted, batch.sampled_logprobs, old), gap
