"""Multi-turn rollouts: a batch of episodes played turn by turn, recorded as token ids with loss masks.

Token ids are concatenated, never re-tokenised: the policy's sampled ids are kept
as sampled, and only the environment's feedback segments are tokenised, once.
Each turn, every active episode's context goes to the backend in one batch, and
every turn that consults goes to the experts in one round of the vector env.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eapo_gym.env import ExpertMathEnv
from eapo_gym.vector import ExpertMathVectorEnv

from .backend import GenerationBackend
from .episode import Episode
from .prompts import hint_ids, prompt_ids


def play_episodes(
    backend: GenerationBackend,
    tokenizer,
    envs: ExpertMathVectorEnv,
    seeds: Sequence[int],
    problem_ids: Sequence[str] | None = None,
    max_context: int = 384,
    first_turn: Callable[[ExpertMathEnv], str] | None = None,
    reset_options: dict[str, Any] | None = None,
    lock_queries: bool = False,
) -> list[Episode]:
    """Play one episode in each of the first ``len(seeds)`` envs, all turns batched.

    ``problem_ids`` (optional) fixes each episode's problem (a GRPO group replays
    one). ``first_turn`` (optional) writes the first turn instead of the policy,
    as the expert-workflow baseline does; its tokens are masked out. An episode
    whose context would exceed ``max_context`` is cut off with reward 0.
    ``reset_options`` (optional) go to every episode's reset (a training step's
    ``acceptance`` and ``max_turns``). ``lock_queries``: the policy cannot write the query tag.
    """
    count = len(seeds)
    unused = [None] * (envs.num_envs - count)
    options = {**(reset_options or {}), "reset_mask": [i < count for i in range(envs.num_envs)]}
    if problem_ids is not None:
        options["problem_id"] = [*problem_ids, *unused]
    _, infos = envs.reset(seed=[*seeds, *unused], options=options)
    episodes = [
        Episode(
            infos["problem_id"][i],
            prompt_ids(tokenizer, envs.envs[i]),
            hint_length=len(hint_ids(tokenizer, envs.envs[i])),
        )
        for i in range(count)
    ]
    if first_turn is not None:
        texts = [first_turn(envs.envs[i]) for i in range(count)]
        for episode, text in zip(episodes, texts, strict=True):
            episode.add_env_tokens(tokenizer.encode(text, add_special_tokens=False))
        for episode, result in zip(episodes, envs.step_some(range(count), texts), strict=True):
            episode.record_step(result, tokenizer)
    while active := [i for i, e in enumerate(episodes) if not e.done]:
        room = [i for i in active if len(episodes[i].context) + backend.max_new_tokens <= max_context]
        for i in set(active) - set(room):
            episodes[i].done, episodes[i].info = True, {**episodes[i].info, "cut_off": True, "correct": False}
        if not room:
            break
        samples = backend.generate([episodes[i].context for i in room], room, lock_queries)
        texts = []
        for row, i in enumerate(room):
            episodes[i].add_policy_tokens(samples.tokens[row], samples.logprobs[row])
            texts.append(tokenizer.decode(samples.tokens[row], skip_special_tokens=True))
        for i, result in zip(room, envs.step_some(room, texts), strict=True):
            episodes[i].record_step(result, tokenizer)
    return episodes
