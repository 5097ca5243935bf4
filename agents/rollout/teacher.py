"""Supervised episodes played through the environment: reference solutions, consultations, expert solutions.

Every trace is a real episode of ``ExpertMathEnv`` written by a teacher instead
of the policy, so its prompt, tags and reply blocks are exactly what the policy
meets in RL, and expert replies are masked out of the loss like in rollouts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eapo_agents.rollout.episode import Episode
from eapo_agents.rollout.prompts import prompt_ids
from eapo_gym.env import ExpertMathEnv
from eapo_gym.verify import extract_answer, is_correct

TEACHER_QUERY = "next step"


def _policy_turn(env: ExpertMathEnv, episode: Episode, text: str, tokenizer, end_with_eos: bool) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    episode.add_policy_tokens(ids + ([tokenizer.eos_token_id] if end_with_eos else []))
    episode.record_step(env.step(text), tokenizer)


def solution_text(steps: tuple[str, ...] | list[str], answer: str, env: ExpertMathEnv) -> str:
    """Steps one per line, then the tagged answer."""
    body = "".join(f"{step}\n" for step in steps)
    return f"{body}{env.protocol.answer_open}{answer}{env.protocol.answer_close}"


def teacher_episode(
    env: ExpertMathEnv, tokenizer, reset: dict[str, Any], consult_turns: int = 0, queries_per_turn: int = 1
) -> Episode:
    """A reference-solution episode; with ``consult_turns > 0`` it first asks the experts.

    A consulting turn sends ``queries_per_turn`` queries, never more than the
    steps not yet revealed, and ends with EOS when fewer than K; consulting stops
    once every step is known. The teacher then writes the remaining steps and
    answers. Steps revealed = queries accepted, as with the reference expert.
    """
    _, info = env.reset(**reset)
    episode = Episode(info["problem_id"], prompt_ids(tokenizer, env))
    query = f"{env.protocol.query_open}{TEACHER_QUERY}{env.protocol.query_close}"
    steps = env.problem.solution_steps
    for _ in range(consult_turns):
        queries = min(queries_per_turn, len(steps) - episode.info.get("accepted", 0))
        if queries <= 0:
            break
        _policy_turn(env, episode, query * queries, tokenizer, queries < env.protocol.max_queries)
        if episode.done:
            return episode
    remaining = steps[min(episode.info.get("accepted", 0), len(steps)) :]
    _policy_turn(env, episode, solution_text(remaining, env.problem.answer, env), tokenizer, False)
    return episode


def expert_solution(
    env: ExpertMathEnv, rng: np.random.Generator, max_calls: int = 12
) -> tuple[list[str], str] | None:
    """Ask the env's experts for the current problem step by step; the steps and their final value
    if that value is the gold answer."""
    replies: list[str] = []
    context = env.transcript
    for _ in range(max_calls):
        outcome = env.ask([TEACHER_QUERY], context, rng)[0]
        if outcome.reply is None or outcome.reply == env.protocol.exhausted_notice:
            break
        replies.append(outcome.reply)
        context += "\n" + outcome.reply
    answer = final_value(extract_answer(replies[-1]) or "") if replies else ""
    return (replies, answer) if answer and is_correct(answer, env.problem.answer) else None


def final_value(answer: str) -> str:
    """``109+49=158`` -> ``158``: a step written as an equation answers with its right-hand side."""
    return answer.rsplit("=", 1)[-1].strip()


def distill_episode(env: ExpertMathEnv, tokenizer, reset: dict[str, Any], rng: np.random.Generator):
    """An episode whose single turn is the expert's own verified solution, or ``None`` if it failed."""
    _, info = env.reset(**reset)
    solution = expert_solution(env, rng)
    if solution is None:
        return None
    steps, answer = solution
    episode = Episode(info["problem_id"], prompt_ids(tokenizer, env))
    _policy_turn(env, episode, solution_text(steps, answer, env), tokenizer, False)
    return episode
