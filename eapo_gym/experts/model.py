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

    The prompt is ``prompt_template`` filled with the problem's ``{question}``
    and the lines this expert already gave in the episode (``{previous}``, one
    per line); ``{context}`` (the transcript) and ``{query}`` (the policy's
    question) are available too. Queries of one episode get successive steps,
    as with the reference expert. A line that holds ``final_marker`` (the model
    wants to answer) becomes the reference expert's "no further steps" reply:
    experts help with steps and leave the answer to the policy. Replies stop at
    the first newline or EOS and at ``max_new_tokens``.

    A round is answered in passes: pass j generates the j-th pending query of
    every episode in the round in one left-padded, KV-cached ``generate`` call,
    so 64 episodes with 3 queries each cost 3 calls. ``model`` is a local
    directory (loaded with ``from_pretrained`` offline, on ``device`` in ``dtype``:
    ``auto`` is the checkpoint's own; transformers' Hub kernels only if
    ``hub_kernels``) or a loaded model, in which case ``tokenizer`` is required.
    Generation runs under a lock, so envs on several threads can share one model.
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
        dtype: str = "auto",
        hub_kernels: bool = False,
    ) -> None:
        try:
            prompt_template.format(question="", previous="", context="", query="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"prompt_template {prompt_template!r} is not valid: {error!r}") from None
        if isinstance(model, str | Path):
            from transformers import AutoModelForCausalLM

            from eapo_gym.tokenizer import load_tokenizer

            tokenizer = tokenizer or load_tokenizer(model)
            model = AutoModelForCausalLM.from_pretrained(
                model, dtype=dtype, local_files_only=True, use_kernels=hub_kernels
            ).to(device)
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
        """One reply per query; pass j answers the j-th query of each episode (by ``memory``) at once."""
        episodes: dict[int, list[int]] = {}
        for i, query in enumerate(queries):
            episodes.setdefault(id(query.memory), []).append(i)
        replies = [EXHAUSTED_REPLY] * len(queries)
        for j in range(max((len(indices) for indices in episodes.values()), default=0)):
            pending = [
                indices[j]
                for indices in episodes.values()
                if j < len(indices) and not _exhausted(queries[indices[j]].memory)
            ]
            if not pending:
                continue
            texts = self._generate_batch([self.prompt_for(queries[i]) for i in pending])
            for i, text in zip(pending, texts, strict=True):
                replies[i] = self.reply_from(text)
                queries[i].memory.setdefault("lines", []).append(replies[i])
        return replies

    def prompt_for(self, query: ExpertQuery) -> str:
        """The model's prompt for one query."""
        previous = "".join(f"{line}\n" for line in query.memory.get("lines", []))
        return self.prompt_template.format(
            question=query.problem.question, previous=previous, context=query.context, query=query.text
        )

    def reply_from(self, text: str) -> str:
        """The reply in a generated text: its first line, or "no further steps" if it would answer."""
        line = text.split("\n", 1)[0].strip()
        return EXHAUSTED_REPLY if not line or self.final_marker in line else line

    def _generate_batch(self, prompts: list[str]) -> list[str]:
        """Each prompt's continuation (EOS read as a newline), from one left-padded ``generate`` call."""
        import torch

        encoded = [self.tokenizer.encode(prompt, add_special_tokens=False) for prompt in prompts]
        width = max(len(ids) for ids in encoded)
        pad = next(
            (t for t in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if t is not None), 0
        )
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {}
        with self._lock, torch.no_grad():
            output = self.model.generate(
                input_ids,
                attention_mask=mask,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=pad,
                eos_token_id=self.tokenizer.eos_token_id,
                **({"do_sample": False} | sampling),
            )
        eos = self.tokenizer.eos_token or "\0"
        return [
            self.tokenizer.decode(row[width:], skip_special_tokens=False).replace(eos, "\n") for row in output
        ]


def _exhausted(memory: dict) -> bool:
    lines = memory.get("lines", [])
    return bool(lines) and lines[-1] == EXHAUSTED_REPLY
