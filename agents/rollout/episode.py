"""One episode as the model saw it: prompt ids, then alternating policy and environment tokens."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Episode:
    """Token ids with two masks: ``mask`` is 1 on tokens the policy generated (the loss sees only
    these); ``expert_mask`` is 1 on the text of expert replies (for the optional off-policy term).
    The last ``hint_length`` prompt ids are a hint (the env's ``hint`` reset option)."""

    problem_id: str
    prompt_ids: list[int]
    hint_length: int = 0
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    expert_mask: list[int] = field(default_factory=list)
    sample_logprobs: list[float] = field(default_factory=list)
    reward: float = 0.0
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def add_policy_tokens(self, ids: Sequence[int], logprobs: Sequence[float] | None = None) -> None:
        """Tokens in the policy's place; ``logprobs`` None: written by a teacher, not sampled (NaN)."""
        self.completion_ids.extend(ids)
        self.mask.extend([1] * len(ids))
        self.expert_mask.extend([0] * len(ids))
        self.sample_logprobs.extend(logprobs if logprobs is not None else [math.nan] * len(ids))

    def add_env_tokens(self, ids: Sequence[int], expert: bool = False) -> None:
        self.completion_ids.extend(ids)
        self.mask.extend([0] * len(ids))
        self.expert_mask.extend([int(expert)] * len(ids))
        self.sample_logprobs.extend([0.0] * len(ids))

    def record_step(self, result: tuple, tokenizer) -> None:
        """Take an env step's result: the reward if the episode ended, else its feedback tokens, masked.

        The feedback comes as ``info["feedback_segments"]``; each segment is tokenised on
        its own, and only ``reply`` segments count as expert text.
        """
        _, reward, terminated, truncated, info = result
        self.info = info
        if terminated or truncated:
            self.reward, self.done = float(reward), True
            return
        for segment in info["feedback_segments"]:
            self.add_env_tokens(
                tokenizer.encode(segment.text, add_special_tokens=False), segment.kind == "reply"
            )

    @property
    def context(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def policy_token_count(self) -> int:
        return sum(self.mask)
