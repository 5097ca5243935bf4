"""Sampler test helpers: tiny models of each decoder path, and rows that end at scheduled counts."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from eapo_agents.rollout.sampling import TurnStopper
from eapo_agents.training.policy import build_tiny_model
from eapo_gym.protocol import TurnProtocol
from eapo_gym.tokenizer import load_tokenizer

MODELS = ("qwen2", "llama-gqa", "gpt2")


def tiny_model(name: str):
    """A random-init Qwen2 or Llama with grouped-query attention (``StaticKVDecoder``), or a GPT-2
    (``HFCacheDecoder``)."""
    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    if name == "qwen2":
        return build_tiny_model(tokenizer, seed=1).eval()
    if name == "llama-gqa":
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=128,
        )  # fmt: skip
        return LlamaForCausalLM(config).eval()
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4)).eval()


class ScheduledEnds(TurnStopper):
    """Ends row r of the n-th call's batch at its ``schedule[n][r]``-th token (the last schedule
    repeats for later calls)."""

    def __init__(self, *schedule: list[int]) -> None:
        super().__init__(load_tokenizer(), TurnProtocol())
        self.schedule, self.calls = schedule, 0

    def start(self, batch: int, device: torch.device) -> None:
        super().start(batch, device)
        ends = self.schedule[min(self.calls, len(self.schedule) - 1)][:batch]
        self.row_ends, self.count = torch.tensor(ends), torch.zeros(batch, dtype=torch.long)
        self.calls += 1

    def update(self, tokens: torch.Tensor) -> torch.Tensor:
        self.count += 1
        return self.count == self.row_ends

    def keep(self, rows: torch.Tensor) -> None:
        super().keep(rows)
        self.row_ends, self.count = self.row_ends[rows], self.count[rows]
