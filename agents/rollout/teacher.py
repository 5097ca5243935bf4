"""Supervised episodes played through the environment: reference solutions, consultations, expert solutions.

Every trace is a real episode of ``ExpertMathEnv`` written by a teacher instead
of the policy, so its prompt, tags and reply blocks are exactly what the policy
meets in RL, and expert replies are masked out of the loss like in rollouts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eapo_gym.env import ExpertMathEnv
from eapo_gym.verify import extract_answer, is_correct

from .episode import Episode
from .prompts import prompt_ids

TEACHER_QUERY = "What is the next step?"
ASK_WHEN_DONE = 0.25  # how often a teacher that knows every step asks once more anyway


def _policy_turn(env: ExpertMathEnv, episode: Episode, text: str, tokenizer, end_with_eos: bool) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    episode.add_policy_tokens(ids + ([tokenizer.eos_token_id] if end_with_eos else []))
    episode.record_step(env.step(text), tokenizer)


def solution_text(steps: tuple[str, ...] | list[str], answer: str, env: ExpertMathEnv) -> str:
    """Steps one per line, then the tagged answer."""
    body = "".join(f"{step}\n" for step in steps)
    return f"{body}{env.protocol.answer_open}{answer}{env.protocol.answer_close}"


def teacher_episode(
    env: ExpertMathEnv, tokenizer, reset: dict[str, Any], rng: np.random.Generator, consult: bool = False
) -> Episode:
    """A reference-solution episode; a consulting one first asks for help, turn by turn.

    In each of 1-3 consulting turns the teacher may first write the next unknown step
    itself, then asks one or two queries about the step after it ("What is 54+57?"),
    and ends the turn (EOS when fewer than K; a turn of three queries would not fit
    a 48-token turn). A step is known once its text is in the
    transcript, so a declined query ("unavailable") leaves the step to the teacher.
    When every step is known it sometimes asks once more and meets "no further
    steps". It then writes the steps still unknown and answers.
    """
    _, info = env.reset(**reset)
    episode = Episode(info["problem_id"], prompt_ids(tokenizer, env))
    steps = env.problem.solution_steps
    for _ in range(int(rng.integers(1, 4)) if consult else 0):
        unknown = [step for step in steps if step not in env.transcript]
        if not unknown and rng.random() > ASK_WHEN_DONE:
            break
        own = unknown[: int(rng.integers(0, 2))] if len(unknown) > 1 else []
        queries = int(rng.integers(1, min(2, env.protocol.max_queries) + 1))
        asked = unknown[len(own)] if len(unknown) > len(own) else None
        text = "".join(f"{step}\n" for step in own) + query_for(asked, env) * queries
        _policy_turn(env, episode, text, tokenizer, queries < env.protocol.max_queries)
        if episode.done:
            return episode
    remaining = [step for step in steps if step not in env.transcript]
    _policy_turn(env, episode, solution_text(remaining, env.problem.answer, env), tokenizer, False)
    return episode


def query_for(step: str | None, env: ExpertMathEnv) -> str:
    """The sub-question whose answer is ``step``: "What is 54+57?" for "54+57=111"."""
    question = f"What is {step.split('=')[0]}?" if step and "=" in step else TEACHER_QUERY
    return f"{env.protocol.query_open}{question}{env.protocol.query_close}"


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
