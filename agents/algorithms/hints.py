"""Annealed hints: GRPO with a prefix of the reference solution in the prompt, shrinking to nothing.

After UFT (Liu et al., "UFT: Unifying Supervised and Reinforcement Fine-Tuning", 2025) and QuestA
(Li et al., "QuestA: Expanding Reasoning Capacity in LLMs via Question Augmentation", 2025). Every
training episode's prompt ends with the first ``h_s`` of its reference steps (the environment's
``hint`` reset option; never the last step, which gives the answer), where

    h_s = hint_start * schedule(s)        schedule: cosine from 1 to 0 over the run (UFT's)

so the policy is trained on easier, partly solved problems first and alone by the end, as it is
evaluated. The hint is context: only the policy's own tokens get gradient, with GRPO's loss as is.

Defaults and where ours differs: ``hint_start`` 0.5 (QuestA starts at 50% of the solution; UFT at
the whole of it); the cosine schedule is UFT's (QuestA steps 50% -> 25%; ``--hint-schedule``
takes any ``eapo_gym.schedules`` name); every problem gets the hint (QuestA hints only problems the
base model almost never solves); UFT's likelihood term on the hint tokens is not added.
"""

from __future__ import annotations

from dataclasses import dataclass

from eapo_gym.schedules import parse_schedule

from ..rollout.episode import Episode
from ..training.config import ScheduledOptions, check_schedules, option
from ..training.registry import register_agent
from .grpo import GRPOAgent, GRPOOptions


@dataclass
class HintStartOptions(GRPOOptions):
    """Where a hint that changes over the run starts (annealed and adaptive hints)."""

    hint_start: float = option(0.5, "share of the reference steps shown at update 1", at_least=0, at_most=1)


@dataclass
class HintOptions(HintStartOptions, ScheduledOptions):
    """The annealed hint's options."""

    hint_schedule: str = option(
        "cosine", "how the hint shrinks to none: cosine (UFT), linear, exponential, constant:R"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_schedules(self, "hint_schedule")


@register_agent("hints")
class AnnealedHintAgent(GRPOAgent):
    """Annealed hints (UFT, QuestA): a reference-solution prefix in the prompt, shrinking to none.

    GRPO groups whose prompts end with the first steps of the solution; the policy's tokens only learn."""

    Options = HintOptions

    def hint_share(self, step: int) -> float:
        """h_s, the share of the reference steps in the prompt at update ``step``."""
        options = self.options
        schedule = parse_schedule(options.hint_schedule, options.schedule_length(self.config))
        return options.hint_start * schedule(step)

    def training_groups(self, step: int) -> list[list[Episode]]:
        reset = {**self.episode_rules.reset_options(step, self.config), "hint": self.hint_share(step)}
        return self.collect_groups(step, self.config.problems_per_step, self.config.group_size, reset)
