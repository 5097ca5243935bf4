"""The agent protocol, and ``BaseAgent``: the rollouts, batches and update loop every built-in agent shares.

An agent is any class with this shape, registered under a name::

    @register_agent("my-algo")
    class MyAgent:
        Options = MyOptions          # a dataclass of its own settings (flags, YAML keys); NoOptions if none
        trains = True                # False: evaluation only (like "base")
        supervised = False           # True: trained on traces, not rewards (like "sft")
        engines = ("native",)        # the engines that can train it (``registry.engines_of``)
        eval_with_experts = False    # evaluate with experts answering every query
        first_turn = None            # or a function env -> text: a scripted first turn (like "workflow")
        @classmethod
        def training_episodes(cls, config) -> TrainingEpisodes: ...     # how its training episodes play
        @classmethod
        def fixed_at_start(cls, config) -> TrainConfig: ...             # settings a resume keeps
        def __init__(self, model, tokenizer, config: TrainConfig): ...  # keep model and tokenizer
        def train_step(self, step: int) -> dict[str, float]: ...       # one update at training step s >= 1
        def state_dict(self) -> dict: ...                              # optimizer and any extra state
        def load_state_dict(self, state: dict) -> None: ...

``eapo-gym train --algo my-algo`` then trains, logs, checkpoints, resumes and
evaluates it like the built-in ones, and ``MyOptions``' fields become its flags.
Subclassing ``BaseAgent`` gives:

- ``self.options``: the agent's ``Options``, from flags, YAML or config.json;
- ``self.optimizer``: AdamW over the trainable parameters (``state_dict`` saves it);
- ``training_episodes(config)``: experts off, the query tag locked, the whole turn budget
  (EAPO overrides it; both engines play training episodes as it says);
- ``self.envs``: one ``ExpertMathVectorEnv`` with an episode per rollout of an update;
- ``self.backend``: the ``--rollout-backend`` (``rollout.backend.make_backend``), its weights
  synced after every optimizer step;
- ``collect_groups(step, problems, group_size)``: that many problems (in all, over the
  processes), ``group_size`` episodes each, played at training step ``step`` (which sets rho
  and the turn budget; the query tag is locked unless the training episodes consult);
- ``pack(episodes)``: padded tensors with the policy-token loss mask;
- ``optimise(batch, loss, ...)``: passes of ``loss`` over length-bucketed micro-batches,
  an optimizer step per pass (gradients averaged over processes when launched with several);
- ``rollout_metrics(episodes)``: reward, accuracy, consultation and cost statistics.

Randomness is derived from ``(seed, step)`` (``distributed.draw_update``), so a resumed run
draws the same problems and samples as an uninterrupted one, and the TRL engine, or several
processes, the same problems and episode seeds (the sampling noise is drawn per process).
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from eapo_gym.env import ExpertMathEnv
from eapo_gym.vector import ExpertMathVectorEnv

from ..rollout.backend import GenerationBackend, SamplingConfig, make_backend
from ..rollout.episode import Episode
from ..rollout.play import play_episodes
from .batch import TokenBatch, length_buckets, loss_weights, pack_episodes, policy_logprobs
from .config import NoOptions, ScheduledOptions, TrainConfig
from .distributed import average_gradients, draw_update, process_share, processes_and_rank
from .environments import TrainingEpisodes, make_vector_env
from .run import episode_rng

Loss = Callable[[TokenBatch], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class Agent(Protocol):
    """What the training loop, the evaluation and the CLI use of an agent."""

    Options: ClassVar[type]
    trains: bool
    supervised: bool
    eval_with_experts: bool
    first_turn: Callable[[ExpertMathEnv], str] | None
    model: torch.nn.Module
    tokenizer: Any

    @classmethod
    def training_episodes(cls, config: TrainConfig) -> TrainingEpisodes: ...

    @classmethod
    def fixed_at_start(cls, config: TrainConfig) -> TrainConfig: ...

    def train_step(self, step: int) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BaseAgent:
    """Optimizer, training environments, grouped rollouts and the micro-batched update loop."""

    Options: ClassVar[type] = NoOptions
    trains = True
    supervised = False
    eval_with_experts = False
    first_turn: Callable[[ExpertMathEnv], str] | None = None

    def __init__(self, model, tokenizer, config: TrainConfig) -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.options = config.options
        self.device = next(model.parameters()).device
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        # float16 (mixed precision): the loss is scaled so that small gradients do not underflow
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.dtype == "float16")
        self.generator = torch.Generator(device=self.device)
        self.accelerator = None  # set by the training loop under a multi-process launcher
        self.rollout_seconds = self.expert_seconds = 0.0

    @classmethod
    def training_episodes(cls, config: TrainConfig) -> TrainingEpisodes:
        """How training episodes play: experts off, the query tag locked, the whole turn budget."""
        return TrainingEpisodes()

    @classmethod
    def fixed_at_start(cls, config: TrainConfig) -> TrainConfig:
        """The settings of a run's first start, written to its config.json (a resume keeps them).
        ``ScheduledOptions`` with a ``schedule_steps`` of 0 get the first start's ``--steps``: a resume
        to more steps continues the schedules from where they are, not from a longer one's earlier point."""
        if isinstance(config.options, ScheduledOptions) and not config.options.schedule_steps:
            return config.replace(schedule_steps=config.steps)
        return config

    @cached_property
    def episode_rules(self) -> TrainingEpisodes:
        """This run's ``training_episodes``."""
        return self.training_episodes(self.config)

    @cached_property
    def envs(self) -> ExpertMathVectorEnv:
        """One training episode per rollout of this process's share of an update (rho and the turn
        budget come at reset)."""
        config = self.config
        processes, _ = processes_and_rank(self.accelerator)
        count = config.problems_per_step * config.group_size // processes
        return make_vector_env(config, count, "train", config.train_difficulties)

    @cached_property
    def backend(self) -> GenerationBackend:
        """How rollouts generate: ``--rollout-backend`` (``rollout.backend.make_backend``)."""
        return make_backend(
            self.config.rollout_backend,
            self.model,
            self.tokenizer,
            self.envs.protocol,
            SamplingConfig(self.config.max_new_tokens, self.config.temperature, self.config.top_p),
            self.generator,
            lock_queries=True,
        )

    @property
    def rank(self) -> int:
        """This process's index under a launcher; 0 alone."""
        return self.accelerator.process_index if self.accelerator is not None else 0

    def rng(self, step: int) -> np.random.Generator:
        return episode_rng(self.config.seed, step, self.rank)

    def collect_groups(
        self,
        step: int,
        problems: int,
        group_size: int,
        reset_options: dict[str, Any] | None = None,
        lock_queries: bool | None = None,
    ) -> list[list[Episode]]:
        """``problems`` training problems, ``group_size`` episodes each, at training step ``step`` (with
        the step's ``TrainingEpisodes`` options and query lock unless others are given).

        ``problems`` is global: under several processes each plays its share of the groups
        (``distributed.process_share``), drawn as one process draws them; only the sampling noise
        is drawn per process."""
        processes, rank = processes_and_rank(self.accelerator)
        source = self.envs.problems
        indices, seeds, noise = draw_update(
            self.config.seed, step, len(source), problems, group_size, processes, rank
        )
        self.generator.manual_seed(noise)
        indices, seeds = process_share(indices, processes, rank), process_share(seeds, processes, rank)
        self.rollout_seconds = self.expert_seconds = 0.0
        problem_ids = [source[i].id for i in indices for _ in range(group_size)]
        episodes = self.play(step, seeds, problem_ids, reset_options, lock_queries)
        return [episodes[g * group_size : (g + 1) * group_size] for g in range(len(indices))]

    def play(
        self,
        step: int,
        seeds: list[int],
        problem_ids: list[str],
        reset_options: dict[str, Any] | None = None,
        lock_queries: bool | None = None,
    ) -> list[Episode]:
        """One episode per seed, on the given problems, at training step ``step`` (timed into
        ``rollout_seconds``, its expert rounds into ``expert_seconds``). The query tag is locked unless
        the training episodes consult (EAPO)."""
        options = reset_options or self.episode_rules.reset_options(step, self.config)
        if lock_queries is None:
            lock_queries = not self.episode_rules.consults
        started, waited = time.perf_counter(), self.envs.expert_seconds
        self.model.eval()
        episodes = play_episodes(
            self.backend,
            self.tokenizer,
            self.envs,
            seeds,
            problem_ids,
            self.config.max_context,
            reset_options=options,
            lock_queries=lock_queries,
        )
        self.model.train()
        self.rollout_seconds += time.perf_counter() - started
        self.expert_seconds += self.envs.expert_seconds - waited
        return episodes

    def rollout_metrics(self, episodes: list[Episode]) -> dict[str, float]:
        """Statistics of the latest rollouts, for the training log."""
        return rollout_metrics(episodes, self.rollout_seconds, self.expert_seconds)

    def pack(self, episodes: list[Episode]) -> TokenBatch:
        return pack_episodes(episodes, self.tokenizer.pad_token_id, self.device)

    def optimise(
        self, batch: TokenBatch, loss: Loss, epochs: int = 1, aggregation: str = "token", constant: int = 0
    ) -> dict[str, float]:
        """``epochs`` passes over ``batch``, one optimizer step each; return the mean statistics.

        Each pass sums ``loss(chunk)`` over length-bucketed micro-batches of ``batch``, with
        ``weights`` (``loss_weights`` of the ``aggregation`` and ``constant``) and ``share``
        (1 / policy tokens, for token means) set. ``loss`` returns the micro-batch's part of the
        batch loss and statistics weighted the same way; a statistic named ``*_max`` is the largest
        over the micro-batches instead.
        """
        batch = dataclasses.replace(
            batch,
            weights=loss_weights(batch.loss_mask, aggregation, constant),
            share=loss_weights(batch.loss_mask, "token"),
        )
        totals: dict[str, float] = defaultdict(float)
        for _ in range(epochs):
            for _, chunk in self.micro_batches(batch):
                value, stats = loss(chunk)
                self.scaler.scale(value).backward()
                totals["loss"] += value.item() / epochs
                for name, stat in stats.items():
                    if name.endswith("_max"):
                        totals[name] = max(totals[name], stat.item())
                    else:
                        totals[name] += stat.item() / epochs
            totals["grad_norm"] += self.apply_gradients() / epochs
        return dict(totals)

    def micro_batches(self, batch: TokenBatch) -> Iterator[tuple[torch.Tensor, TokenBatch]]:
        """Rows grouped by length (``length_buckets``), each group cut to its longest row: (the group's
        row numbers, its batch). A group holds at most ``micro_batch_size`` rows and
        ``micro_batch_tokens`` padded tokens (0: no limit)."""
        lengths = batch.attention_mask.sum(1).tolist()
        for rows in length_buckets(lengths, self.config.micro_batch_size, self.config.micro_batch_tokens):
            width = max(int(max(lengths[row] for row in rows)), 2)
            index = torch.tensor(rows, device=batch.input_ids.device)
            yield index, batch.rows(index).cut(width)

    def per_token(self, batch: TokenBatch, fn: Callable[[TokenBatch], Any]) -> Any:
        """``fn`` (a tensor or a tuple of [rows, width - 1] tensors) over the micro-batches,
        reassembled into full [N, T - 1] tensors (zeros past each row's end). No grad by the caller."""
        full: list[torch.Tensor] = []
        for index, chunk in self.micro_batches(batch):
            result = fn(chunk)
            parts = result if isinstance(result, tuple) else (result,)
            if not full:
                full = [part.new_zeros(batch.targets.shape) for part in parts]
            for whole, part in zip(full, parts, strict=True):
                whole[index, : part.shape[1]] = part
        return tuple(full) if isinstance(result, tuple) else full[0]

    def logprobs(self, model, batch: TokenBatch) -> torch.Tensor:
        """Per-token log-probabilities of a whole batch, one micro-batch at a time (no grad by the caller)."""
        return self.per_token(batch, lambda chunk: policy_logprobs(model, chunk, self.config.temperature))

    def apply_gradients(self) -> float:
        """Average over processes (if several), clip, step, zero; return the gradient norm before clipping."""
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        average_gradients(parameters, self.accelerator)
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
        self.scaler.step(self.optimizer)  # skipped (and the scale lowered) if a gradient overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if "backend" in self.__dict__:  # a backend was made (supervised agents have none)
            self.backend.sync_weights()
        return float(norm)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def rollout_metrics(
    episodes: list[Episode], rollout_seconds: float, expert_seconds: float = 0.0
) -> dict[str, float]:
    """Reward, accuracy, consultation and cost statistics of ``episodes`` (a row of metrics.jsonl), and
    the time of their rollout, of which ``expert_seconds`` in expert rounds. ``sequence_tokens``: every
    token of the episodes (prompts, policy turns, replies), what the update runs through the model."""
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
        "turn_budget": float(episodes[0].info.get("max_turns", 0)),
        "policy_tokens": float(sum(e.policy_token_count for e in episodes)),
        "sequence_tokens": float(sum(len(e.context) for e in episodes)),
        "turns": total("turns") / count,
        "hinted_episodes": sum(e.hint_length > 0 for e in episodes) / count,
        "hint_chars": total("hint_chars") / count,
        "rollout_seconds": rollout_seconds,
        "expert_seconds": expert_seconds,
    }
