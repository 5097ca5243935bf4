"""Multi-turn rollouts: a batch of episodes played turn by turn, recorded as token ids with a loss mask.

Token ids are concatenated, never re-tokenised: the policy's sampled ids are
kept as sampled, and only the environment's feedback text is tokenised, once.
``mask`` is 1 for tokens the policy generated and 0 for the prompt, expert
replies and environment notices, so expert text never receives gradient from
the policy-gradient loss; ``expert_mask`` marks the replies' text for the
optional off-policy term (``--expert-token-coef``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.sampling import SamplingConfig, TurnStopper, sample_turns
from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts.reference import EXHAUSTED_REPLY
from eapo_gym.protocol import TurnProtocol


@dataclass
class Episode:
    """One episode as the model saw it: prompt, then alternating policy and environment tokens."""

    problem_id: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    expert_mask: list[int] = field(default_factory=list)  # 1 on the text of expert replies
    sample_logprobs: list[float] = field(default_factory=list)
    reward: float = 0.0
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def add_policy_tokens(self, ids: Sequence[int], logprobs: Sequence[float] | None = None) -> None:
        self.completion_ids.extend(ids)
        self.mask.extend([1] * len(ids))
        self.expert_mask.extend([0] * len(ids))
        self.sample_logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    def add_env_tokens(self, ids: Sequence[int], expert: bool = False) -> None:
        self.completion_ids.extend(ids)
        self.mask.extend([0] * len(ids))
        self.expert_mask.extend([int(expert)] * len(ids))
        self.sample_logprobs.extend([0.0] * len(ids))

    @property
    def context(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def policy_token_count(self) -> int:
        return sum(self.mask)


def play_episodes(
    model,
    tokenizer,
    envs: Sequence[ExpertMathEnv],
    resets: Sequence[dict[str, Any]],
    sampling: SamplingConfig,
    max_context: int,
    generator: torch.Generator | None = None,
    first_turn: Callable[[ExpertMathEnv], str] | None = None,
) -> list[Episode]:
    """Play one episode per env (``env.reset(**resets[i])``) with the policy, all turns batched.

    ``first_turn`` (optional) writes the first turn instead of the policy, as the
    expert-workflow baseline does; its tokens are masked out. An episode whose
    context would exceed ``max_context`` is cut off with reward 0.
    """
    stopper = TurnStopper(tokenizer, envs[0].protocol)
    episodes = []
    for env, reset in zip(envs, resets, strict=True):
        observation, info = env.reset(**reset)
        episodes.append(Episode(info["problem_id"], tokenizer.encode(observation, add_special_tokens=False)))
    if first_turn is not None:
        for env, episode in zip(envs, episodes, strict=True):
            text = first_turn(env)
            episode.add_env_tokens(tokenizer.encode(text, add_special_tokens=False))
            apply_turn(env, episode, text, tokenizer)
    while active := [i for i, e in enumerate(episodes) if not e.done]:
        room = [i for i in active if len(episodes[i].context) + sampling.max_new_tokens <= max_context]
        for i in set(active) - set(room):
            episodes[i].done, episodes[i].info = True, {**episodes[i].info, "cut_off": True, "correct": False}
        if not room:
            break
        samples = sample_turns(
            model, [episodes[i].context for i in room], stopper, sampling, tokenizer.pad_token_id, generator
        )
        for row, i in enumerate(room):
            episodes[i].add_policy_tokens(samples.tokens[row], samples.logprobs[row])
            text = tokenizer.decode(samples.tokens[row], skip_special_tokens=True)
            apply_turn(envs[i], episodes[i], text, tokenizer)
    return episodes


def apply_turn(env: ExpertMathEnv, episode: Episode, text: str, tokenizer) -> None:
    """Step the env with one turn's text; record its feedback tokens or the episode's end."""
    _, reward, terminated, truncated, info = env.step(text)
    episode.info = info
    if terminated or truncated:
        episode.reward, episode.done = float(reward), True
    else:
        for piece, expert in feedback_segments(info["feedback"], env.protocol):
            episode.add_env_tokens(tokenizer.encode(piece, add_special_tokens=False), expert)


def feedback_segments(text: str, protocol: TurnProtocol) -> list[tuple[str, bool]]:
    """The env's feedback as (piece, written by an expert) pairs: reply contents are expert text;
    tags, newlines and the env's notices ("unavailable", "no further steps") are not."""
    notices = {protocol.unavailable_notice, protocol.failure_notice, EXHAUSTED_REPLY}
    segments, position = [], 0
    for match in protocol.reply_pattern.finditer(text):
        reply = match.group(1)
        segments += [(text[position : match.start(1)], False), (reply, reply not in notices)]
        position = match.end(1)
    segments.append((text[position:], False))
    return [(piece, expert) for piece, expert in segments if piece]
