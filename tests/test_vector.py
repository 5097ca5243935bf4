"""ExpertMathVectorEnv: the same episodes as N single envs, one expert round per step for the whole batch."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts import FunctionExpert, ReferenceExpert
from eapo_gym.scripted import ExpertFollower
from eapo_gym.vector import ExpertMathVectorEnv

EASY = {"problems": "arithmetic", "difficulty": 2}


def test_make_vec_returns_the_native_vector_env_and_keeps_sync_and_async():
    native = gym.make_vec("EAPOMath-v0", num_envs=3, **EASY)
    assert isinstance(native, ExpertMathVectorEnv) and native.num_envs == 3
    for mode, kind in (("sync", SyncVectorEnv), ("async", AsyncVectorEnv)):
        envs = gym.make_vec("EAPOMath-v0", num_envs=2, vectorization_mode=mode, **EASY)
        assert isinstance(envs, kind)
        envs.reset(seed=0)
        _, rewards, terminated, _, _ = envs.step(("<answer>1</answer>",) * 2)
        assert terminated.all() and rewards.shape == (2,)
        envs.close()


def test_episodes_equal_those_of_single_envs_with_the_same_seeds():
    """Problems, admissions, expert seeds (a noisy expert draws from them), replies, rewards and info."""
    settings = {**EASY, "acceptance": 0.6, "experts": [ReferenceExpert(noise=0.5)]}
    seeds = list(range(10, 18))
    singles = [ExpertMathEnv(**settings) for _ in seeds]
    vector = ExpertMathVectorEnv(len(seeds), autoreset_mode=AutoresetMode.DISABLED, **settings)
    observations, _ = vector.reset(seed=seeds)
    expected = [env.reset(seed=seed)[0] for env, seed in zip(singles, seeds, strict=True)]
    assert list(observations) == expected
    policy = ExpertFollower(vector.protocol, consult=True, max_turns=10)
    active = list(range(len(seeds)))
    for turn in range(10):
        actions = [policy.act(singles[i].transcript, turn) for i in active]
        results = vector.step_some(active, actions)
        for i, action, result in zip(active, actions, results, strict=True):
            assert result == singles[i].step(action)
        active = [i for i, result in zip(active, results, strict=True) if not (result[2] or result[3])]
        if not active:
            break
    assert not active


def test_a_step_sends_the_whole_batch_to_each_expert_in_one_call():
    calls: list[int] = []

    def answer_all(queries):
        calls.append(len(queries))
        return [f"reply to {query.text}" for query in queries]

    vector = ExpertMathVectorEnv(8, experts=[FunctionExpert(answer_all, batched=True)], **EASY)
    vector.reset(seed=0)
    _, _, _, _, infos = vector.step(["<expert>a</expert><expert>b</expert>"] * 8)
    assert calls == [16]
    assert list(infos["accepted"]) == [2] * 8
    assert all(segments[1].text == "reply to a" for segments in infos["feedback_segments"])


def test_every_query_of_the_batch_is_in_flight_at_once():
    """48 queries (16 episodes x K=3) meet at a barrier: only possible if none waits for another."""
    barrier = threading.Barrier(48, timeout=10)

    def meet(query):
        barrier.wait()
        return "ok"

    vector = ExpertMathVectorEnv(16, experts=[meet], expert_timeout=20, **EASY)
    vector.reset(seed=0)
    _, _, _, _, infos = vector.step(["<expert>a</expert><expert>b</expert><expert>c</expert>"] * 16)
    assert list(infos["expert_errors"]) == [0] * 16 and list(infos["accepted"]) == [3] * 16


def test_sequential_experts_see_their_episodes_earlier_replies_only():
    seen: list[tuple[str, str]] = []

    def record(query):
        seen.append((query.text, query.context))
        return f"reply-{query.text}"

    vector = ExpertMathVectorEnv(2, experts=[record], parallel_experts=False, **EASY)
    vector.reset(seed=0)
    vector.step(["<expert>a1</expert><expert>a2</expert>", "<expert>b1</expert><expert>b2</expert>"])
    contexts = dict(seen)
    assert "reply-a1" in contexts["a2"] and "reply-b1" not in contexts["a2"]
    assert "reply-b1" in contexts["b2"] and "reply-a1" not in contexts["b2"]


def test_next_step_autoreset_and_partial_resets():
    vector = ExpertMathVectorEnv(2, **EASY)
    vector.reset(seed=0)
    _, _, terminated, _, _ = vector.step(["<answer>1</answer>", "<expert>a</expert>"])
    assert terminated.tolist() == [True, False]
    observations, rewards, terminated, _, infos = vector.step(["ignored", "<answer>1</answer>"])
    assert infos["turns"][0] == 0 and rewards[0] == 0.0  # env 0 was reset, not stepped
    disabled = ExpertMathVectorEnv(2, autoreset_mode="Disabled", **EASY)
    first, _ = disabled.reset(seed=[5, 6])
    again, infos = disabled.reset(seed=[7, 8], options={"reset_mask": np.array([False, True])})
    assert again[0] == first[0] and again[1] != first[1] and list(infos["_problem_id"]) == [False, True]


def test_per_env_options_replay_chosen_problems():
    vector = ExpertMathVectorEnv(3, **EASY)
    ids = [vector.problems[i].id for i in (4, 4, 9)]
    _, infos = vector.reset(seed=0, options={"problem_id": ids})
    assert list(infos["problem_id"]) == ids


def test_token_mode_vector_env():
    vector = ExpertMathVectorEnv(2, action_mode="token", **EASY)
    observations, _ = vector.reset(seed=0)
    tokenizer = vector.envs[0].tokenizer
    answer = tokenizer.encode("<answer>", add_special_tokens=False)[0]
    _, _, terminated, _, _ = vector.step([answer, tokenizer.eos_token_id])
    assert terminated.tolist() == [False, True]  # an empty turn gives up; an open answer waits


def test_reset_options_reach_every_episode_or_each_its_own():
    vector = ExpertMathVectorEnv(3, acceptance=0.0, **EASY)
    vector.reset(seed=0, options={"acceptance": 0.25})
    assert vector.get_attr("acceptance_rate") == (0.25,) * 3
    vector.reset(seed=0, options={"max_turns": [1, 2, 3]})
    assert vector.get_attr("turn_budget") == (1, 2, 3) and vector.get_attr("acceptance_rate") == (0.0,) * 3


def test_a_forked_child_consults_with_its_own_workers():
    """The parent's expert threads do not survive a fork; the child's round must not wait on them."""
    import multiprocessing

    vector = ExpertMathVectorEnv(2, experts=[ReferenceExpert()], expert_timeout=30, **EASY)
    vector.reset(seed=0)
    query = vector.protocol.query_open + "next?" + vector.protocol.query_close
    vector.step([query, query])  # the parent's panel has started its worker threads

    def child(results) -> None:
        vector.reset(seed=1)
        started = time.perf_counter()
        _, _, _, _, info = vector.step([query, query])
        results.put((time.perf_counter() - started, int(info["accepted"].sum())))

    results = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(target=child, args=(results,))
    process.start()
    seconds, accepted = results.get(timeout=25)
    process.join(timeout=10)
    assert accepted == 2 and seconds < 5  # answered by fresh workers, not the parent's dead ones
