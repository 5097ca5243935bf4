"""The seam between the multi-turn rollout and whatever generates text.

A backend writes the policy's next turn for a batch of episodes. The rollout
(``play.play_episodes``) sees generation only through this interface, so vLLM,
an external trainer's generation path or another decoder is one new class.
``sampling.LocalBackend`` (our KV-cached decoders) is the first one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Samples:
    """Per row: the generated ids (the turn-ending token included), their log-probabilities under the
    sampling distribution, and whether the turn ended (False: cut at ``max_new_tokens``)."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    stopped: list[bool]


class GenerationBackend(Protocol):
    """Continues each context by one policy turn.

    ``contexts[i]`` is an episode's token ids so far (prompt, earlier turns and
    feedback); ``keys[i]`` identifies that episode within the rollout batch, so a
    backend may keep per-episode state (a KV cache) between turns. A turn ends
    where the environment's ``TurnProtocol.turn_ends`` says, at EOS, or after
    ``max_new_tokens``.
    """

    max_new_tokens: int

    def generate(self, contexts: Sequence[list[int]], keys: Sequence[Hashable]) -> Samples: ...
