"""ExpertMathEnv: protocol, rewards, experts, acceptance, token mode and Gymnasium conformance."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts import FunctionExpert
from eapo_gym.protocol import TurnProtocol
from eapo_gym.schedules import InverseSchedule

EASY = {"problems": "arithmetic", "difficulty": 1}


def make(**kwargs) -> ExpertMathEnv:
    return ExpertMathEnv(**{**EASY, **kwargs})


def test_make_by_id_and_namespaced_id():
    for env_id in ("EAPOMath-v0", "eapo_gym:EAPOMath-v0"):
        env = gym.make(env_id, **EASY)
        obs, info = env.reset(seed=0)
        assert isinstance(obs, str) and "Problem:" in obs
        assert info["problem_id"] == env.unwrapped.problem.id


def test_consult_then_correct_answer_scores_one():
    env = gym.make("EAPOMath-v0", **EASY)
    obs, _ = env.reset(seed=0)
    problem = env.unwrapped.problem
    assert problem.solution_steps[0] not in obs
    obs, reward, terminated, truncated, info = env.step("Let me ask. <expert>How do I start?</expert>")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert f"<reply>{problem.solution_steps[0]}</reply>" in obs
    assert info["consults"] == info["accepted"] == 1 and info["feedback"] in obs
    obs, reward, terminated, truncated, info = env.step(
        f"So it is {problem.answer}. <answer>{problem.answer}</answer>"
    )
    assert reward == 1.0 and terminated and not truncated
    assert info["correct"] and info["well_formed"] and info["turns"] == 2


def test_wrong_but_well_formed_answer_scores_format_reward():
    env = make()
    env.reset(seed=1)
    wrong = str(int(env.problem.answer) + 1)
    *_, reward, terminated, _, info = env.step(f"<answer>{wrong}</answer>")
    assert reward == pytest.approx(0.1) and terminated and not info["correct"] and info["well_formed"]


@pytest.mark.parametrize(
    "garbage", ["", "I give up", "<answer></answer>", "<answer>" + "9" * 300 + "</answer>"]
)
def test_garbage_scores_zero_and_ends(garbage):
    env = make()
    env.reset(seed=2)
    *_, reward, terminated, truncated, info = env.step(garbage)
    assert reward == 0.0 and terminated and not truncated and not info["correct"]


def test_boxed_answer_without_tags_counts():
    env = make()
    env.reset(seed=3)
    *_, reward, _, _, info = env.step(f"The sum is \\boxed{{{env.problem.answer}}}.")
    assert reward == 1.0 and info["answer"]


def test_a_hint_shows_the_first_reference_steps_never_the_last():
    env = ExpertMathEnv(problems="arithmetic", difficulty=4)  # five steps
    observation, info = env.reset(seed=0)
    assert env.hint == "" and info["hint_chars"] == 0
    steps = env.problem.solution_steps
    observation, info = env.reset(seed=0, options={"hint": 0.5})
    assert env.hint == f"{steps[0]}\n{steps[1]}\n" and observation.endswith(env.hint)
    assert info["hint_chars"] == len(env.hint)
    env.reset(seed=0, options={"hint": 1.0})
    assert env.hint == "".join(f"{step}\n" for step in steps[:-1])  # the last step gives the answer
    _, reward, *_ = env.step(f"<answer>{env.problem.answer}</answer>")
    assert reward == 1.0
    for bad in (1.5, -0.1, "half", True):
        with pytest.raises(ValueError, match="hint"):
            env.reset(seed=0, options={"hint": bad})


def test_a_fractional_hint_is_rounded_at_random_to_its_expected_length():
    env = ExpertMathEnv(problems="arithmetic", difficulty=3)  # three steps: at most two in a hint
    lengths = {share: [] for share in (0.0, 0.2, 0.499, 1.0)}
    for seed in range(400):
        for share, shown in lengths.items():
            env.reset(seed=seed, options={"hint": share})
            shown.append(env.hint.count("\n"))
    assert set(lengths[0.0]) == {0} and set(lengths[1.0]) == {2}
    assert set(lengths[0.2]) == {0, 1} and sum(lengths[0.2]) / 400 == pytest.approx(0.4, abs=0.07)
    assert set(lengths[0.499]) <= {0, 1} and sum(lengths[0.499]) / 400 == pytest.approx(0.998, abs=0.07)
    env.reset(seed=5)
    unhinted = env.problem
    env.reset(seed=5, options={"hint": 0.2})
    assert env.problem == unhinted  # the draw comes after the problem's


def test_acceptance_zero_rejects_every_query():
    env = make(acceptance=0.0)
    env.reset(seed=0)
    obs, *_, info = env.step("<expert>a</expert><expert>b</expert><expert>c</expert>")
    assert info["rejected"] == 3 and info["accepted"] == 0 and info["expert_chars"] == 0
    assert obs.count(env.protocol.unavailable_notice) == 3


def test_at_most_k_queries_are_sent():
    env = make(max_queries=2)
    env.reset(seed=0)
    *_, info = env.step("<expert>a</expert><expert>b</expert><expert>c</expert>")
    assert info["consults"] == 2 and info["dropped_queries"] == 1


def test_turn_limit_truncates():
    env = make(max_turns=2)
    env.reset(seed=0)
    env.step("<expert>help</expert>")
    *_, reward, terminated, truncated, info = env.step("<expert>more</expert>")
    assert truncated and not terminated and reward == 0.0 and info["turns"] == 2


def test_consult_cost_is_charged_per_query():
    env = make(consult_cost=0.05)
    env.reset(seed=0)
    env.step("<expert>a</expert><expert>b</expert>")
    *_, reward, _, _, _ = env.step(f"<answer>{env.problem.answer}</answer>")
    assert reward == pytest.approx(1.0 - 2 * 0.05)


def test_reward_values_are_configurable():
    env = make(reward_correct=2.0, reward_format=0.5)
    env.reset(seed=0)
    *_, reward, _, _, _ = env.step("<answer>-123456</answer>")
    assert reward == 0.5


def test_an_episodes_rho_and_turn_budget_come_through_reset_options_of_a_vector_env():
    envs = gym.make_vec("EAPOMath-v0", num_envs=2, vectorization_mode="sync", acceptance=0.5, **EASY)
    _, infos = envs.reset(seed=0)
    assert list(infos["acceptance_rate"]) == [0.5, 0.5] and list(infos["max_turns"]) == [10, 10]
    envs.reset(seed=0, options={"acceptance": 0.25, "max_turns": 3})
    _, _, _, _, infos = envs.step(("<expert>x</expert>", "<expert>y</expert>"))
    assert list(infos["acceptance_rate"]) == [0.25, 0.25] and list(infos["max_turns"]) == [3, 3]
    envs.reset(seed=0)  # the next episode without options: the env's defaults again
    assert envs.get_attr("acceptance_rate") == (0.5, 0.5)
    envs.close()


def test_reset_options_through_wrappers_and_their_errors():
    env = RecordEpisodeStatistics(TimeLimit(gym.make("EAPOMath-v0", acceptance=0.0, **EASY), 5))
    _, info = env.reset(seed=0, options={"acceptance": 0.2})
    assert info["acceptance_rate"] == pytest.approx(0.2)
    *_, info = env.step("<answer>0</answer>")
    assert "episode" in info and info["episode"]["l"] == 1
    for options, message in (
        ({"acceptance": 1.5}, "lie in \\[0, 1\\]"),
        ({"acceptance": "inverse"}, "a probability"),
        ({"max_turns": 11}, "lies in \\[1, 10\\]"),
        ({"max_turns": 0}, "lies in \\[1, 10\\]"),
    ):
        with pytest.raises(ValueError, match=message):
            env.reset(seed=0, options=options)
    with pytest.raises(ValueError, match="a probability"):
        make(acceptance="inverse")


def test_reset_is_reproducible_from_seed_without_global_rng():
    state = np.random.get_state()[1].copy()
    runs = []
    for _ in range(2):
        env = make(acceptance=0.5)
        obs, _ = env.reset(seed=123)
        obs2, *_ = env.step("<expert>a</expert><expert>b</expert><expert>c</expert>")
        runs.append((obs, obs2))
    assert runs[0] == runs[1]
    assert np.array_equal(state, np.random.get_state()[1])
    seeds = {make().reset(seed=s)[1]["problem_id"] for s in range(20)}
    assert len(seeds) > 10


def test_problem_id_option_replays_the_same_problem():
    env = make()
    env.reset(seed=0)
    first = env.problem
    for seed in range(5):
        env.reset(seed=seed, options={"problem_id": first.id})
        assert env.problem == first


def test_observation_never_contains_the_solution_before_consulting():
    env = make()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        assert all(step not in obs for step in env.problem.solution_steps)


def test_render_ansi_returns_transcript():
    env = make(render_mode="ansi")
    env.reset(seed=0)
    env.step("<expert>hi</expert>")
    assert "<expert>hi</expert>" in env.render() and "<reply>" in env.render()


def test_parallel_dispatch_sends_all_queries_at_once():
    barrier = threading.Barrier(3, timeout=5)

    def meet(query):
        barrier.wait()
        return f"ok {query.text}"

    env = make(experts=[meet, meet, meet], expert_timeout=10)
    env.reset(seed=0)
    obs, *_, info = env.step("<expert>a</expert><expert>b</expert><expert>c</expert>")
    assert info["expert_errors"] == 0
    assert all(f"<reply>ok {q}</reply>" in obs for q in "abc")


def test_one_callable_expert_answers_parallel_queries_concurrently():
    barrier = threading.Barrier(3, timeout=5)

    def meet(query):
        barrier.wait()
        return query.text.upper()

    env = make(experts=FunctionExpert(meet), expert_timeout=10)
    env.reset(seed=0)
    obs, *_, info = env.step("<expert>a</expert><expert>b</expert><expert>c</expert>")
    assert info["expert_errors"] == 0 and "<reply>A</reply>" in obs and "<reply>C</reply>" in obs


def test_sequential_dispatch_shows_earlier_replies_to_later_queries():
    seen = []

    def record(query):
        seen.append(query.context)
        return f"reply-{query.text}"

    env = make(experts=record, parallel_experts=False)
    env.reset(seed=0)
    env.step("<expert>a</expert><expert>b</expert>")
    assert "reply-a" not in seen[0] and "reply-a" in seen[1]


def test_failing_and_slow_experts_degrade_the_episode_without_crashing():
    def broken(query):
        raise ConnectionError("server down")

    def slow(query):
        time.sleep(2)
        return "late"

    env = make(experts=[broken, slow], expert_timeout=0.2)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("<expert>a</expert><expert>b</expert>")
    assert not terminated and info["expert_errors"] == 2
    assert obs.count(env.protocol.failure_notice) == 2
    *_, reward, terminated, _, info = env.step(f"<answer>{env.problem.answer}</answer>")
    assert reward == 1.0 and terminated


def test_expert_returning_non_strings_is_a_failure():
    env = make(experts=FunctionExpert(lambda queries: [42], batched=True))
    env.reset(seed=0)
    obs, *_, info = env.step("<expert>a</expert>")
    assert info["expert_errors"] == 1 and env.protocol.failure_notice in obs


def test_custom_tags():
    protocol = TurnProtocol(
        query_open="[ASK]", query_close="[/ASK]", answer_open="[ANS]", answer_close="[/ANS]"
    )
    env = make(protocol=protocol)
    obs, _ = env.reset(seed=0)
    assert "[ASK]" in obs
    obs, *_, info = env.step("[ASK]help[/ASK]")
    assert info["accepted"] == 1
    *_, reward, _, _, _ = env.step(f"[ANS]{env.problem.answer}[/ANS]")
    assert reward == 1.0


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 1_000_000,
        "\x00" * 100 + "<answer>\x00</answer>",
        "\ud800<answer>\udfff</answer>",
        "<expert>" * 5000,
    ],
)
def test_hostile_actions_do_not_crash(hostile):
    env = make()
    env.reset(seed=0)
    obs, reward, *_ = env.step(hostile)
    assert env.observation_space.contains(obs) and reward in (0.0, 0.1)


def test_step_after_episode_end_is_an_error():
    env = make()
    env.reset(seed=0)
    env.step("<answer>1</answer>")
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer>1</answer>")


def play_tokens(env: ExpertMathEnv, turns: list[str]):
    """Drive a token-mode env with whole turns, ending each with EOS if no tag ended it."""
    tokenizer = env.tokenizer
    for number, turn in enumerate(turns, start=1):
        for token in tokenizer.encode(turn, add_special_tokens=False):
            result = env.step(token)
        if result[4]["turns"] < number:
            result = env.step(tokenizer.eos_token_id)
        if result[2] or result[3]:
            return result
    return result


@pytest.mark.parametrize("answer_kind", ["correct", "wrong", "consult-correct"])
def test_token_mode_reaches_the_same_rewards_as_text_mode(answer_kind):
    text_env, token_env = make(), make(action_mode="token")
    text_env.reset(seed=7)
    ids, _ = token_env.reset(seed=7)
    assert token_env.tokenizer.decode(ids.tolist()) == text_env.transcript
    answer = text_env.problem.answer if answer_kind != "wrong" else str(int(text_env.problem.answer) + 5)
    turns = [f"<answer>{answer}</answer>"]
    if answer_kind == "consult-correct":
        turns.insert(0, "<expert>first step?</expert>")
    text_results = [text_env.step(turn) for turn in turns]
    token_result = play_tokens(token_env, turns)
    assert token_result[1] == text_results[-1][1]
    assert token_result[4]["correct"] == text_results[-1][4]["correct"]
    transcript = token_env.tokenizer.decode(token_result[0].tolist(), skip_special_tokens=True)
    assert transcript == text_env.transcript


def test_token_mode_eos_ends_a_turn_and_queries_inject_expert_tokens():
    env = make(action_mode="token")
    ids, _ = env.reset(seed=0)
    tokenizer = env.tokenizer
    turn = tokenizer.encode("<expert>hint</expert>", add_special_tokens=False)
    for token in turn:
        obs, reward, terminated, truncated, info = env.step(token)
    assert info["turns"] == 0  # one query of K=3: the turn waits for more or for EOS
    obs, reward, terminated, truncated, info = env.step(tokenizer.eos_token_id)
    assert info["turns"] == 1 and info["expert_tokens"] > 0 and not terminated
    assert len(obs) == len(ids) + len(turn) + 1 + info["expert_tokens"]
    assert env.problem.solution_steps[0] in tokenizer.decode(obs.tolist())
    *_, terminated, _, info = env.step(tokenizer.eos_token_id)  # an empty turn gives up
    assert terminated and not info["correct"]


@pytest.mark.parametrize("action_mode", ["text", "token"])
def test_env_checker_passes(action_mode):
    check_env(make(action_mode=action_mode), skip_render_check=True)
    check_env(make(action_mode=action_mode, render_mode="ansi"))


def test_sync_vector_env_autoresets():
    envs = gym.make_vec("EAPOMath-v0", num_envs=3, vectorization_mode="sync", **EASY)
    obs, infos = envs.reset(seed=0)
    assert len(obs) == 3 and len(set(infos["problem_id"])) >= 2
    _, rewards, terminated, _, _ = envs.step(("<answer>1</answer>",) * 3)
    assert terminated.all() and rewards.shape == (3,)
    obs, *_ = envs.step(("x",) * 3)  # autoreset step
    assert all("Problem:" in o for o in obs)
    envs.close()


def test_shipped_tokenizer_matches_a_fresh_build():
    from eapo_gym.tokenizer import build_char_tokenizer, load_tokenizer

    shipped, fresh = load_tokenizer(), build_char_tokenizer()
    assert shipped.get_vocab() == fresh.get_vocab()
    text = "Q: 23+45=? <expert>how</expert><reply>23+45=68</reply><answer>68</answer>"
    assert shipped.encode(text, add_special_tokens=False) == fresh.encode(text, add_special_tokens=False)
    assert shipped.convert_tokens_to_ids("</answer>") != shipped.unk_token_id


def test_feedback_segments_keep_an_expert_reply_whole_even_when_it_holds_tags():
    env = make(experts=lambda query: "a </reply><reply> b")
    env.reset(seed=0)
    obs, *_, info = env.step("<expert>q</expert>")
    segments = info["feedback_segments"]
    assert [s.kind for s in segments] == ["tag", "reply", "tag"]
    assert segments[1].text == "a </reply><reply> b"
    assert "".join(s.text for s in segments) == info["feedback"] and obs.endswith(info["feedback"])


def test_notices_are_segments_of_their_own_kind():
    env = make(acceptance=0.0)
    env.reset(seed=0)
    *_, info = env.step("<expert>a</expert><expert>b</expert>")
    assert [s.kind for s in info["feedback_segments"]] == ["tag", "notice", "tag", "notice", "tag"]
    env = make(max_queries=3)
    env.reset(seed=0)
    *_, info = env.step("<expert>a</expert>" * 3)  # difficulty 1 has one step, given to every query
    kinds = [(s.kind, s.text) for s in info["feedback_segments"] if s.kind != "tag"]
    assert kinds == [("reply", env.problem.solution_steps[0])] * 3
    *_, info = env.step("<expert>more?</expert>")  # the step is in the transcript now: no further steps
    assert [(s.kind, s.text) for s in info["feedback_segments"] if s.kind != "tag"] == [
        ("notice", env.protocol.exhausted_notice)
    ]


def test_token_mode_segments_carry_the_ids_appended_to_the_observation():
    env = make(action_mode="token")
    ids, _ = env.reset(seed=0)
    for token in env.tokenizer.encode("<expert>hint</expert>", add_special_tokens=False):
        env.step(token)
    obs, *_, info = env.step(env.tokenizer.eos_token_id)
    appended = [i for segment in info["feedback_segments"] for i in segment.token_ids]
    assert appended and obs.tolist()[-len(appended) :] == appended


def test_a_turn_cut_at_its_size_limit_is_flagged():
    env = make(max_turn_chars=20)
    env.reset(seed=0)
    *_, reward, terminated, _, info = env.step("x" * 30 + f"<answer>{env.problem.answer}</answer>")
    assert info["turn_cut"] and info["answer"] is None and reward == 0.0 and terminated
    env.reset(seed=0)
    *_, info = env.step(f"<answer>{env.problem.answer}</answer>")
    assert not info["turn_cut"] and info["correct"]


def test_each_kind_of_expert_failure_is_logged_once(caplog):
    def broken(query):
        raise ConnectionError("server down")

    env = make(experts=broken)
    with caplog.at_level("WARNING", logger="eapo_gym.experts"):
        for seed in range(3):
            env.reset(seed=seed)
            *_, info = env.step("<expert>a</expert><expert>b</expert>")
    assert (
        info["expert_errors"] == 2 and info["expert_failures"] == ["broken: ConnectionError: server down"] * 2
    )
    assert len([r for r in caplog.records if "ConnectionError" in r.getMessage()]) == 1


def test_an_episode_is_truncated_at_its_turn_budget():
    env = make(max_turns=10, acceptance=0.0)
    env.reset(seed=0, options={"max_turns": 2})
    *_, terminated, truncated, info = env.step("<expert>a</expert>")
    assert not truncated
    *_, terminated, truncated, info = env.step("<expert>b</expert>")
    assert truncated and info["turns"] == 2


@pytest.mark.parametrize("step", [1, 2, 4, 10])
def test_queries_are_admitted_at_rate_rho_within_binomial_bounds(step):
    """3,000 queries at training step s under rho = 1/s: the admitted share is within 4 sigma of rho."""
    env = make()
    admitted = asked = 0
    for seed in range(1000):
        env.reset(seed=seed, options={"acceptance": InverseSchedule()(step)})
        *_, info = env.step("<expert>a</expert><expert>b</expert><expert>c</expert>")
        admitted, asked = admitted + info["accepted"], asked + info["consults"]
    rho = 1.0 / step
    assert abs(admitted / asked - rho) <= 4 * (rho * (1 - rho) / asked) ** 0.5
