"""The agent protocol, the registry, and the machinery every built-in agent shares.

A custom agent is any class with this shape, registered under a name::

    @register_agent("my-algo")
    class MyAgent:
        trains = True                 # False: evaluation only (like "base")
        eval_with_experts = False     # evaluate with experts answering every query
        def __init__(self, model, tokenizer, config: TrainConfig): ...
        def train_step(self, step: int) -> dict[str, float]: ...   # one policy update at step s >= 1
        def state_dict(self) -> dict: ...                          # optimizer and any extra state
        def load_state_dict(self, state: dict) -> None: ...

``eapo-gym train --algo my-algo`` then trains, logs, checkpoints, resumes and
evaluates it like the built-in ones (import the module that registers it, e.g.
with ``--plugin my_module``). Subclassing ``BaseAgent`` gives rollouts, the
optimizer and checkpoint state for free.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import torch

from agents.config import TrainConfig
from agents.distributed import average_gradients
from agents.environments import acceptance_spec, make_env
from agents.rollout import Episode, play_episodes
from agents.sampling import SamplingConfig
from agents.tokens import TokenBatch, policy_logprobs


class Agent(Protocol):
    trains: bool
    eval_with_experts: bool

    def train_step(self, step: int) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


AGENTS: dict[str, Callable[..., Agent]] = {}


def register_agent(name: str) -> Callable[[type], type]:
    """Class decorator: make an agent available as ``--algo name``."""

    def register(cls: type) -> type:
        AGENTS[name] = cls
        cls.name = name
        return cls

    return register


def make_agent(name: str, model, tokenizer, config: TrainConfig) -> Agent:
    if name not in AGENTS:
        raise ValueError(f"unknown algorithm {name!r}; registered: {sorted(AGENTS)}")
    return AGENTS[name](model, tokenizer, config)


class BaseAgent:
    """Optimizer, training environments, grouped rollouts and micro-batched backward passes.

    Randomness is derived from ``(seed, step)`` (and the process rank under
    ``accelerate launch``), so a resumed run draws the same problems and samples
    as an uninterrupted one.
    """

    trains = True
    eval_with_experts = False
    uses_experts = False  # training episodes get expert replies (EAPO)
    rollout_seconds = 0.0  # wall time of the latest ``collect_groups`` (logged by the trainer)

    def __init__(self, model, tokenizer, config: TrainConfig) -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device = next(model.parameters()).device
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
        self.generator = torch.Generator(device=self.device)
        self.reference = copy.deepcopy(model).eval().requires_grad_(False) if config.kl_beta > 0 else None
        self.accelerator = None  # set by the trainer under ``accelerate launch`` (agents.distributed)

    @cached_property
    def envs(self) -> list:
        """One training env per episode of a rollout batch."""
        count = self.config.problems_per_step * self.config.group_size
        acceptance = acceptance_spec(self.config) if self.uses_experts else 0.0
        return [
            make_env(self.config, "train", self.config.train_difficulties, acceptance) for _ in range(count)
        ]

    def rng(self, step: int) -> np.random.Generator:
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        return np.random.default_rng([self.config.seed, step, *([rank] if rank else [])])

    def collect_groups(self, step: int, problems: int, group_size: int) -> list[list[Episode]]:
        """``problems`` training problems, ``group_size`` episodes each, at training step ``step``."""
        rng = self.rng(step)
        source = self.envs[0].problems
        problem_ids = [source[int(i)].id for i in rng.integers(len(source), size=problems)]
        seeds = rng.integers(2**31, size=problems * group_size)
        resets = [
            {
                "seed": int(seeds[i]),
                "options": {"problem_id": problem_ids[i // group_size], "training_step": step},
            }
            for i in range(problems * group_size)
        ]
        self.generator.manual_seed(int(rng.integers(2**63)))
        started = time.perf_counter()
        self.model.eval()
        episodes = play_episodes(
            self.model,
            self.tokenizer,
            self.envs[: len(resets)],
            resets,
            self.sampling,
            self.config.max_context,
            self.generator,
        )
        self.model.train()
        self.rollout_seconds = time.perf_counter() - started
        return [episodes[g * group_size : (g + 1) * group_size] for g in range(problems)]

    def micro_batches(
        self, batch: TokenBatch, **per_row: torch.Tensor | None
    ) -> Iterator[tuple[TokenBatch, dict[str, torch.Tensor | None]]]:
        """Rows grouped by length, each group cut to its longest row, with the aligned tensors alike.

        A group holds at most ``micro_batch_size`` rows (0: no limit) and at most
        ``micro_batch_tokens`` padded tokens (0: no limit), so short sequences are
        not padded to the longest one of the batch. ``rows["index"]`` is the
        group's row numbers in ``batch``.
        """
        lengths = batch.attention_mask.sum(1).tolist()
        order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
        max_rows = self.config.micro_batch_size or len(order)
        budget = self.config.micro_batch_tokens
        start = 0
        while start < len(order):
            width = max(int(lengths[order[start]]), 2)
            count = max(1, min(max_rows, budget // width if budget else len(order)))
            index = torch.tensor(order[start : start + count], device=batch.input_ids.device)
            start += count
            sliced = {name: _cut(value, index, width, batch) for name, value in per_row.items()}
            yield batch.rows(index).cut(width), {"index": index, **sliced}

    def per_token(self, batch: TokenBatch, fn: Callable[[TokenBatch], Any]) -> Any:
        """``fn`` (a tensor or a tuple of [rows, width - 1] tensors) over the micro-batches,
        reassembled into full [N, T - 1] tensors (zeros past each row's end). No grad by the caller."""
        full: list[torch.Tensor] = []
        for chunk, rows in self.micro_batches(batch):
            result = fn(chunk)
            parts = result if isinstance(result, tuple) else (result,)
            if not full:
                full = [part.new_zeros(batch.targets.shape) for part in parts]
            for whole, part in zip(full, parts, strict=True):
                whole[rows["index"], : part.shape[1]] = part
        return tuple(full) if isinstance(result, tuple) else full[0]

    def logprobs_in_chunks(self, model, batch: TokenBatch) -> torch.Tensor:
        """Per-token log-probabilities of a whole batch, one micro-batch at a time (no grad by the caller)."""
        return self.per_token(batch, lambda chunk: policy_logprobs(model, chunk, self.config.temperature))

    def apply_gradients(self) -> float:
        """Average over processes (if several), clip, step, zero; return the gradient norm before clipping."""
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        average_gradients(parameters, self.accelerator)
        norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


def _cut(value: torch.Tensor | None, index: torch.Tensor, width: int, batch: TokenBatch):
    """Rows ``index`` of a per-row tensor; per-token ones ([N, T - 1]) cut to ``width - 1`` columns."""
    if value is None:
        return None
    rows = value[index]
    return rows[:, : width - 1] if value.dim() == 2 and value.shape[1] == batch.targets.shape[1] else rows


def episode_metrics(episodes: list[Episode]) -> dict[str, float]:
    """Rollout statistics shared by the RL agents' logs."""
    count = len(episodes)
    return {
        "reward": sum(e.reward for e in episodes) / count,
        "accuracy": sum(bool(e.info.get("correct")) for e in episodes) / count,
        "consult_rate": sum(e.info.get("consults", 0) > 0 for e in episodes) / count,
        "queries_per_episode": sum(e.info.get("consults", 0) for e in episodes) / count,
        "expert_calls": float(sum(e.info.get("accepted", 0) for e in episodes)),
        "expert_chars": float(sum(e.info.get("expert_chars", 0) for e in episodes)),
        "acceptance_rate": episodes[0].info.get("acceptance_rate", 0.0),
        "policy_tokens": float(sum(e.policy_token_count for e in episodes)),
        "turns": sum(e.info.get("turns", 0) for e in episodes) / count,
    }
