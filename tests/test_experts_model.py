"""The local transformers expert: successive lines per episode, a round answered in batched passes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts import ExpertQuery, TransformersExpert, make_expert
from eapo_gym.experts.reference import EXHAUSTED_REPLY
from eapo_gym.problems import Problem, load_problems
from eapo_gym.tokenizer import load_tokenizer

PROBLEM = Problem(id="p", question="12+30+7=?", answer="49", solution_steps=("12+30=42", "42+7=49"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A random tiny model over the package tokenizer that never ends a line early (so rounds are full)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = load_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, intermediate_size=128, tie_word_embeddings=True, initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.suppress_tokens = tokenizer.convert_tokens_to_ids(["\n", "<eos>", "<answer>"])
    path = tmp_path_factory.mktemp("expert-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def expert(model_dir) -> TransformersExpert:
    return TransformersExpert(model_dir, max_new_tokens=12)


def round_of(problems: list[Problem], counts: list[int]) -> list[ExpertQuery]:
    """``counts[e]`` queries for episode ``e`` (its own memory), interleaved as a vector env sends them."""
    memories = [{} for _ in problems]
    order = [(e, k) for k in range(max(counts)) for e in range(len(problems)) if k < counts[e]]
    return [ExpertQuery(f"step {k}?", problems[e], memory=memories[e]) for e, k in order]


def count_generate_calls(model, monkeypatch) -> list[int]:
    """Patch ``model.generate`` to record each call's batch size."""
    calls: list[int] = []
    generate = model.generate

    def counted(input_ids, **kwargs):
        calls.append(input_ids.shape[0])
        return generate(input_ids, **kwargs)

    monkeypatch.setattr(model, "generate", counted)
    return calls


def test_a_local_model_gives_successive_lines_inside_the_environment(model_dir):
    expert = make_expert(f"model:{model_dir}")
    assert isinstance(expert, TransformersExpert)
    memory: dict = {}
    replies = [expert.consult([ExpertQuery("next step", PROBLEM, memory=memory)])[0] for _ in range(2)]
    assert len(replies) == 2 and all(isinstance(r, str) and r and "\n" not in r for r in replies)
    assert memory["lines"] == replies
    env = ExpertMathEnv(problems=[PROBLEM], experts=[expert], acceptance=1.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step("<expert>a</expert><expert>b</expert>")
    assert info["accepted"] == 2 and info["expert_errors"] == 0


def test_a_round_costs_one_generate_call_per_pass(expert, monkeypatch):
    problems = list(load_problems("arithmetic", split="train", difficulty=2))[:6]
    queries = round_of(problems, [3, 1, 2, 3, 1, 2])
    calls = count_generate_calls(expert.model, monkeypatch)
    replies = expert.consult(queries)
    assert len(replies) == 12 and EXHAUSTED_REPLY not in replies and calls == [6, 4, 2]
    for memory in {id(q.memory): q.memory for q in queries}.values():
        assert memory["lines"] == [r for q, r in zip(queries, replies, strict=True) if q.memory is memory]


def test_batched_replies_equal_one_at_a_time_replies(expert):
    problems = list(load_problems("mixed", split="train"))[:8]
    counts = [3, 2, 1, 3, 2, 1, 3, 2]
    batched = expert.consult(round_of(problems, counts))
    alone = []
    for query in round_of(problems, counts):
        alone += expert.consult([query])
    assert batched == alone
    assert len(set(batched)) == len(batched)  # real, distinct lines were compared


def test_an_exhausted_episode_is_left_out_of_the_batch(expert, monkeypatch):
    batches: list[int] = []

    def generate_batch(prompts: list[str]) -> list[str]:
        batches.append(len(prompts))
        return ["12+30=42"] * len(prompts)

    monkeypatch.setattr(expert, "_generate_batch", generate_batch)
    done, fresh = {"lines": [EXHAUSTED_REPLY]}, {}
    queries = [ExpertQuery("q", PROBLEM, memory=memory) for memory in (done, fresh, done, fresh)]
    assert expert.consult(queries) == [EXHAUSTED_REPLY, "12+30=42", EXHAUSTED_REPLY, "12+30=42"]
    assert batches == [1, 1] and done["lines"] == [EXHAUSTED_REPLY] and fresh["lines"] == ["12+30=42"] * 2


def test_the_expert_leaves_the_answer_to_the_policy(expert, monkeypatch):
    lines = iter(["12+30=42\n", "<answer>49</answer>"])
    monkeypatch.setattr(expert, "_generate_batch", lambda prompts: [next(lines) for _ in prompts])
    query = ExpertQuery("next", PROBLEM, memory={})
    assert expert.consult([query, query, query]) == ["12+30=42", EXHAUSTED_REPLY, EXHAUSTED_REPLY]


def test_the_prompt_template_may_use_the_context_and_the_question(model_dir):
    expert = TransformersExpert(model_dir, prompt_template="{context}|{query}|{question}|{previous}")
    query = ExpertQuery("why?", PROBLEM, context="so far", memory={"lines": ["12+30=42"]})
    assert expert.prompt_for(query) == "so far|why?|12+30+7=?|12+30=42\n"
    with pytest.raises(ValueError, match="prompt_template"):
        TransformersExpert(model_dir, prompt_template="{question}{answer}")


def test_envs_on_two_threads_share_one_model(expert):
    problems = list(load_problems("arithmetic", split="train", difficulty=1))[:4]
    expected = expert.consult(round_of(problems, [2, 2, 2, 2]))
    results: list[list[str]] = [[], []]

    def play(slot: int) -> None:
        results[slot] = expert.consult(round_of(problems, [2, 2, 2, 2]))

    threads = [threading.Thread(target=play, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [expected, expected]


def test_a_loaded_model_needs_a_tokenizer(model_dir):
    from transformers import AutoModelForCausalLM

    with pytest.raises(ValueError, match="tokenizer"):
        TransformersExpert(AutoModelForCausalLM.from_pretrained(model_dir))


def test_greedy_replies_repeat_and_sampled_ones_vary(model_dir):
    greedy = TransformersExpert(model_dir, max_new_tokens=12)
    sampled = TransformersExpert(model_dir, temperature=5.0, max_new_tokens=12)
    torch.manual_seed(0)
    assert len(set(greedy.consult([ExpertQuery("q", PROBLEM, memory={}) for _ in range(6)]))) == 1
    assert len(set(sampled.consult([ExpertQuery("q", PROBLEM, memory={}) for _ in range(6)]))) > 1


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_model_expert_answers_alike_in_bfloat16(model_dir, device):
    problems = list(load_problems("arithmetic", split="train", difficulty=2))[:4]
    answers = {}
    for dtype in ("float32", "bfloat16"):
        expert = TransformersExpert(model_dir, max_new_tokens=12, device=device, dtype=dtype)
        assert expert.model.dtype == getattr(torch, dtype) and expert.model.device.type == device
        answers[dtype] = expert.consult(round_of(problems, [2, 1, 2, 1]))
    assert all(isinstance(reply, str) and reply and "\n" not in reply for reply in answers["bfloat16"])
    # the replies start alike (this random model's logits are far apart); bf16 rounding may drift later
    assert [reply[:2] for reply in answers["bfloat16"]] == [reply[:2] for reply in answers["float32"]]
