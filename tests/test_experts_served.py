"""The OpenAI-compatible expert against a real ``transformers serve`` that the tests start on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path

import pytest
import torch

from benchmarks.expert_round import build_model, measure_server_round, round_queries, transformers_serve
from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts import ExpertQuery, OpenAIExpert, make_expert
from eapo_gym.problems import Problem, load_problems
from eapo_gym.tokenizer import load_tokenizer

PROBLEM = Problem(id="p", question="12+30+7=?", answer="49", solution_steps=("12+30=42", "42+7=49"))
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
MAX_TOKENS = 6


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server for the module, loading a base model and a chat model by path; always stopped."""
    models = tmp_path_factory.mktemp("served")
    build_model(models / "base", init_std=0.5)
    build_model(models / "chat", chat_template=CHAT_TEMPLATE, init_std=0.5)
    with transformers_serve(startup_timeout=90) as server:
        yield server, models / "base", models / "chat"
    assert server.process.returncode is not None  # the server is gone


@functools.cache
def local_model(model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


def greedy_continuation(model_dir: Path, prompt_ids: list[int]) -> tuple[str, int]:
    """What the model itself writes after ``prompt_ids`` (text without special tokens, token count)."""
    tokenizer = load_tokenizer(model_dir)
    with torch.no_grad():
        output = local_model(model_dir).generate(
            torch.tensor([prompt_ids]), max_new_tokens=MAX_TOKENS, do_sample=False,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )[0, len(prompt_ids):]  # fmt: skip
    return tokenizer.decode(output, skip_special_tokens=True).strip(), len(output)


def test_a_base_model_answers_through_completions_with_its_own_words_and_usage(served):
    server, base, _ = served
    expert = OpenAIExpert(str(base), server.base_url, endpoint="completions", max_tokens=MAX_TOKENS)
    queries = [ExpertQuery(text, PROBLEM, context="12+30=42") for text in ("what next?", "and then?")]
    replies = expert.consult(queries)
    tokenizer = load_tokenizer(base)
    for query, reply in zip(queries, replies, strict=True):
        prompt_ids = tokenizer.encode(expert.request_body(query)["prompt"])
        text, generated = greedy_continuation(base, prompt_ids)
        assert reply.error is None and reply.text == text
        assert (reply.prompt_tokens, reply.completion_tokens) == (len(prompt_ids), generated)
    expert.close()


def test_a_chat_model_answers_through_chat_completions(served):
    server, _, chat = served
    expert = OpenAIExpert(str(chat), server.base_url, endpoint="chat", max_tokens=MAX_TOKENS)
    query = ExpertQuery("what next?", PROBLEM)
    (reply,) = expert.consult([query])
    tokenizer = load_tokenizer(chat)
    messages = expert.request_body(query)["messages"]
    prompt_ids = tokenizer.encode(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    )
    text, generated = greedy_continuation(chat, prompt_ids)
    assert reply.error is None and reply.text == text
    assert (reply.prompt_tokens, reply.completion_tokens) == (len(prompt_ids), generated)
    expert.close()


def test_the_environment_consults_the_server_and_counts_tokens(served):
    server, base, _ = served
    spec = f"openai:{base}@{server.base_url}?endpoint=completions&max_tokens={MAX_TOKENS}&retries=1"
    env = ExpertMathEnv(problems=[PROBLEM], experts=[make_expert(spec)], acceptance=1.0, expert_timeout=60)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("<expert>first?</expert><expert>second?</expert>")
    assert not terminated and info["accepted"] == 2 and info["expert_errors"] == 0
    assert info["feedback"].count("<reply>") == 2 and env.protocol.failure_notice not in info["feedback"]
    assert info["expert_prompt_tokens"] > 2 * len(PROBLEM.question)
    assert 0 < info["expert_completion_tokens"] <= 2 * MAX_TOKENS
    _, reward, terminated, _, _ = env.step("<answer>49</answer>")
    assert terminated and reward == 1.0


def test_a_base_model_has_no_chat_and_the_episode_goes_on(served):
    """What we promise whatever status the server picks for it (transformers 5.24 sent 500, 5.25 sends 400):
    the HTTP error is counted, the API key never shows, and the episode goes on. Which statuses are
    retried is tested against the fault-injecting server, where the test chooses the status."""
    server, base, _ = served
    expert = OpenAIExpert(
        str(base), server.base_url, endpoint="chat", retries=1, backoff=0.01, api_key="sk-x9"
    )
    env = ExpertMathEnv(problems=[PROBLEM], experts=[expert], acceptance=1.0, expert_timeout=60)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("<expert>help</expert>")
    (failure,) = info["expert_failures"]
    assert not terminated and info["expert_errors"] == 1 and info["accepted"] == 1
    assert re.search(r": HTTP [45]\d\d from http://127\.0\.0\.1:", failure) and "sk-x9" not in failure
    _, reward, terminated, _, _ = env.step("<answer>49</answer>")
    assert terminated and reward == 1.0


def test_a_concurrent_round_gets_each_query_its_own_reply(served):
    server, base, _ = served
    expert = OpenAIExpert(str(base), server.base_url, endpoint="completions", max_tokens=MAX_TOKENS)
    queries = [ExpertQuery("next?", problem) for problem in list(load_problems("mixed", split="train"))[:8]]

    async def both() -> tuple[list, list]:
        try:
            together = await expert.aconsult(queries)
            alone = [(await expert.aconsult([query]))[0] for query in queries]
            return together, alone
        finally:
            await expert.aclose()

    together, alone = asyncio.run(both())
    assert [r.text for r in together] == [r.text for r in alone] and all(r.error is None for r in together)
    assert len({r.text for r in together}) > 1  # the prompts differ, and so do the replies


def test_the_round_benchmark_measures_both_ways_on_the_server(served):
    server, base, _ = served
    expert = OpenAIExpert(str(base), server.base_url, endpoint="completions", max_tokens=2)

    async def measure() -> dict:
        try:
            return await measure_server_round(expert, round_queries(3), repeats=1)
        finally:
            await expert.aclose()

    rows = asyncio.run(measure())
    for name in ("batched", "one_at_a_time"):
        (run,) = rows[name]["runs"]
        assert run["replies_per_s"] == pytest.approx(3 / run["seconds"]) == rows[name]["replies_per_s"]
        assert 0 < run["completion_tokens_per_s"] <= 2 * run["replies_per_s"]
    ratio = rows["batched"]["replies_per_s"] / rows["one_at_a_time"]["replies_per_s"]
    assert rows["ratio_batched_over_one_at_a_time"] == pytest.approx(ratio)
