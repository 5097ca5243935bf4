"""The agent protocol, and ``BaseAgent``: the rollouts, batches and update loop every built-in agent shares.

An agent is any class with this shape, registered under a name::

    @register_agent("my-algo")
    class MyAgent:
        Options = MyOptions          # a dataclass of its own settings (flags, YAML keys); NoOptions if none
        trains = True                # False: evaluation only (like "base")
        eval_with_experts = False    # evaluate with experts answering every query
        first_turn = None            # or a function env -> text: a scripted first turn (like "workflow")
        def __init__(self, model, tokenizer, config: TrainConfig): ...  # keep model and tokenizer
        def train_step(self, step: int) -> dict[str, float]: ...       # one update at training step s >= 1
        def state_dict(self) -> dict: ...                              # optimizer and any extra state
        def load_state_dict(self, state: dict) -> None: ...

``eapo-gym train --algo my-algo`` then trains, logs, checkpoints, resumes and
evaluates it like the built-in ones, and ``MyOptions``' fields become its flags.
Subclassing ``BaseAgent`` gives:

- ``self.options``: the agent's ``Options``, from flags, YAML or config.json;
- ``self.optimizer``: AdamW over the trainable parameters (``state_dict`` saves it);
- ``self.envs``: one ``ExpertMathVectorEnv`` with an episode per rollout of an update;
- ``collect_groups(step, problems, group_size)``: that many problems, ``group_size``
  episodes each, played at training step ``step`` (which sets the acceptance rate);
- ``pack(episodes)``: padded tensors with the policy-token loss mask;
- ``optimise(batch, loss, ...)``: passes of ``loss`` over length-bucketed micro-batches,
  an optimizer step per pass (gradients averaged over processes when launched with several);
- ``rollout_metrics(episodes)``: reward, accuracy, consultation and cost statistics.

Randomness is derived from ``(seed, step)`` (and the process rank under a launcher),
so a resumed run draws the same problems and samples as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from eapo_agents.rollout.episode import Episode
from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.sampling import LocalBackend, SamplingConfig
from eapo_agents.training.batch import TokenBatch, loss_weights, pack_episodes, policy_logprobs
from eapo_agents.training.config import NoOptions, TrainConfig
from eapo_agents.training.distributed import average_gradients
from eapo_agents.training.environments import make_vector_env
from eapo_gym.env import ExpertMathEnv
from eapo_gym.vector import ExpertMathVectorEnv

Loss = Callable[[TokenBatch, dict[str, torch.Tensor | None]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class Agent(Protocol):
    """What the training loop, the evaluation and the CLI use of an agent."""

    Options: ClassVar[type]
    trains: bool
    eval_with_experts: bool
    first_turn: Callable[[ExpertMathEnv], str] | None
    model: torch.nn.Module
    tokenizer: Any

    def train_step(self, step: int) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BaseAgent:
    """Optimizer, training environments, grouped rollouts and the micro-batched update loop."""

    Options: ClassVar[type] = NoOptions
    trains = True
    eval_with_experts = False
    first_turn: Callable[[ExpertMathEnv], str] | None = None
    consults_in_training = False  # False: rollouts cannot write the query tag (self-exploratory RL)

    def __init__(self, model, tokenizer, config: TrainConfig) -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.options = config.options
        self.device = next(model.parameters()).device
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.generator = torch.Generator(device=self.device)
        self.accelerator = None  # set by the training loop under a multi-process launcher
        self.rollout_seconds = 0.0

    @cached_property
    def envs(self) -> ExpertMathVectorEnv:
        """One training episode per rollout of an update, with this agent's acceptance and turn budget."""
        return self.make_envs(self.acceptance(), self.turn_schedule())

    def make_envs(self, acceptance: Any, turn_schedule: Any) -> ExpertMathVectorEnv:
        count = self.config.problems_per_step * self.config.group_size
        config = self.config
        return make_vector_env(config, count, "train", config.train_difficulties, acceptance, turn_schedule)

    def acceptance(self) -> Any:
        """The training episodes' acceptance rate rho (0: every query is declined)."""
        return 0.0

    def turn_schedule(self) -> Any:
        """The share of ``max_turns`` that the turn budget keeps at each training step (1: all of it)."""
        return 1.0

    @cached_property
    def backend(self) -> LocalBackend:
        """How rollouts generate: our KV-cached sampler by default (``eapo_agents.rollout.backend``).
        The query tag is locked unless the agent consults during training (EAPO)."""
        return self.make_backend(lock_queries=not self.consults_in_training)

    def make_backend(self, lock_queries: bool) -> LocalBackend:
        sampling = SamplingConfig(self.config.max_new_tokens, self.config.temperature, self.config.top_p)
        return LocalBackend(
            self.model, self.tokenizer, self.envs.protocol, sampling, self.generator, lock_queries
        )

    def rng(self, step: int) -> np.random.Generator:
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        return np.random.default_rng([self.config.seed, step, *([rank] if rank else [])])

    def collect_groups(
        self,
        step: int,
        problems: int,
        group_size: int,
        envs: ExpertMathVectorEnv | None = None,
        backend: LocalBackend | None = None,
    ) -> list[list[Episode]]:
        """``problems`` training problems, ``group_size`` episodes each, at training step ``step``
        (in ``self.envs`` with ``self.backend`` unless others are given)."""
        rng = self.rng(step)
        source = self.envs.problems
        problem_ids = [source[int(i)].id for i in rng.integers(len(source), size=problems)]
        seeds = rng.integers(2**31, size=problems * group_size)
        self.generator.manual_seed(int(rng.integers(2**63)))
        self.rollout_seconds = 0.0
        episodes = self.play(
            step,
            [int(seed) for seed in seeds],
            [problem_id for problem_id in problem_ids for _ in range(group_size)],
            envs,
            backend,
        )
        return [episodes[g * group_size : (g + 1) * group_size] for g in range(problems)]

    def play(
        self,
        step: int,
        seeds: list[int],
        problem_ids: list[str],
        envs: ExpertMathVectorEnv | None = None,
        backend: LocalBackend | None = None,
    ) -> list[Episode]:
        """One episode per seed, on the given problems, at training step ``step`` (timed into
        ``rollout_seconds``)."""
        envs, backend = envs or self.envs, backend or self.backend
        envs.set_training_step(step)
        started = time.perf_counter()
        self.model.eval()
        episodes = play_episodes(backend, self.tokenizer, envs, seeds, problem_ids, self.config.max_context)
        self.model.train()
        self.rollout_seconds += time.perf_counter() - started
        return episodes

    def rollout_metrics(self, episodes: list[Episode]) -> dict[str, float]:
        """Statistics of the latest rollouts, for the training log."""
        return rollout_metrics(episodes, self.rollout_seconds)

    def pack(self, episodes: list[Episode]) -> TokenBatch:
        return pack_episodes(episodes, self.tokenizer.pad_token_id, self.device)

    def optimise(
        self,
        batch: TokenBatch,
        loss: Loss,
        epochs: int = 1,
        aggregation: str = "token",
        constant: int = 0,
        **per_row,
    ) -> dict[str, float]:
        """``epochs`` passes over ``batch``, one optimizer step each; return the mean statistics.

        Each pass sums ``loss(chunk, rows)`` over length-bucketed micro-batches. ``rows``
        holds the micro-batch's slices of the ``per_row`` tensors (per row, or per
        token), ``weights`` (``loss_weights`` of the ``aggregation`` and ``constant``) and ``share``
        (1 / policy tokens, for token means). ``loss`` returns the micro-batch's
        part of the batch loss and statistics weighted the same way.
        """
        weights = loss_weights(batch.loss_mask, aggregation, constant)
        share = loss_weights(batch.loss_mask, "token")
        totals: dict[str, float] = defaultdict(float)
        for _ in range(epochs):
            for chunk, rows in self.micro_batches(batch, weights=weights, share=share, **per_row):
                value, stats = loss(chunk, rows)
                value.backward()
                totals["loss"] += value.item() / epochs
                for name, stat in stats.items():
                    totals[name] += stat.item() / epochs
            totals["grad_norm"] += self.apply_gradients() / epochs
        return dict(totals)

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

    def logprobs(self, model, batch: TokenBatch) -> torch.Tensor:
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


def rollout_metrics(episodes: list[Episode], rollout_seconds: float) -> dict[str, float]:
    """Reward, accuracy, consultation and cost statistics of ``episodes`` (a row of metrics.jsonl)."""
    count = len(episodes)

    def total(key: str) -> float:
        return float(sum(e.info.get(key, 0) for e in episodes))

    return {
        "reward": sum(e.reward for e in episodes) / count,
        "accuracy": sum(bool(e.info.get("correct")) for e in episodes) / count,
        "consult_rate": sum(e.info.get("consults", 0) > 0 for e in episodes) / count,
        "queries_per_episode": total("consults") / count,
        "expert_calls": total("accepted"),
        "expert_chars": total("expert_chars"),
        "expert_prompt_tokens": total("expert_prompt_tokens"),
        "expert_completion_tokens": total("expert_completion_tokens"),
        "expert_errors": total("expert_errors"),
        "expert_retries": total("expert_retries"),
        "acceptance_rate": episodes[0].info.get("acceptance_rate", 0.0),
        "policy_tokens": float(sum(e.policy_token_count for e in episodes)),
        "turns": total("turns") / count,
        "rollout_seconds": rollout_seconds,
    }


def _cut(value: torch.Tensor | None, index: torch.Tensor, width: int, batch: TokenBatch):
    """Rows ``index`` of a per-row tensor; per-token ones ([N, T - 1]) cut to ``width - 1`` columns."""
    if value is None:
        return None
    rows = value[index]
    return rows[:, : width - 1] if value.dim() == 2 and value.shape[1] == batch.targets.shape[1] else rows
