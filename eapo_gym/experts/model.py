"""A local Hugging Face causal LM as an expert: a stronger model that writes the next solution step."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eapo_gym.experts.base import BaseExpert, ExpertQuery
from eapo_gym.experts.reference import EXHAUSTED_REPLY

DEFAULT_EXPERT_PROMPT = "{question}\n{previous}"


class TransformersExpert(BaseExpert):
    """Each query is answered with the model's next solution line, greedy by default.

    The prompt is ``prompt_template`` filled with the problem's question and the
    lines this expert already gave in the episode (``{previous}``, one per
    line), so parallel queries in one turn get successive steps, as with the
    reference expert. A line that holds ``final_marker`` (the model wants to
    answer) becomes the reference expert's "no further steps" reply: experts
    help with steps and leave the answer to the policy. Replies stop at the
    first newline or EOS and at ``max_new_tokens``.

    ``model`` is a local directory (loaded with ``from_pretrained``) or a
    loaded model, in which case ``tokenizer`` is required. Calls are serialised
    by a lock, so the env's thread pool can share one model.
    """

    def __init__(
        self,
        model: str | Path | Any,
        tokenizer: Any = None,
        max_new_tokens: int = 32,
        prompt_template: str = DEFAULT_EXPERT_PROMPT,
        final_marker: str = "<answer>",
        temperature: float = 0.0,
        device: str = "cpu",
        name: str = "model",
    ) -> None:
        if isinstance(model, str | Path):
            from transformers import AutoModelForCausalLM

            from eapo_gym.tokenizer import load_tokenizer

            tokenizer = tokenizer or load_tokenizer(model)
            model = AutoModelForCausalLM.from_pretrained(model).to(device)
        if tokenizer is None:
            raise ValueError("TransformersExpert needs a tokenizer when given a loaded model")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_new_tokens = max_new_tokens
        self.prompt_template = prompt_template
        self.final_marker = final_marker
        self.temperature = temperature
        self.name = name
        self._lock = threading.Lock()

    def consult(self, queries: Sequence[ExpertQuery]) -> list[str]:
        return [self._next_line(query) for query in queries]

    def _next_line(self, query: ExpertQuery) -> str:
        previous = query.memory.setdefault("lines", [])
        if previous and previous[-1] == EXHAUSTED_REPLY:
            return EXHAUSTED_REPLY
        prompt = self.prompt_template.format(
            question=query.problem.question, previous="".join(f"{line}\n" for line in previous)
        )
        line = self._generate(prompt).split("\n", 1)[0].strip()
        reply = EXHAUSTED_REPLY if not line or self.final_marker in line else line
        previous.append(reply)
        return reply

    def _generate(self, prompt: str) -> str:
        import torch

        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        device = next(self.model.parameters()).device
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {}
        with self._lock, torch.no_grad():
            output = self.model.generate(
                torch.tensor([ids], device=device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **({"do_sample": False} | sampling),
            )
        return self.tokenizer.decode(output[0, len(ids) :], skip_special_tokens=False).replace(
            self.tokenizer.eos_token or "\0", "\n"
        )
