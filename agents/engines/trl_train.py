"""``eapo-gym train --engine trl``: GRPO or EAPO episodes trained by TRL's ``GRPOTrainer``.

The run directory is our loop's (``training.run``): ``config.json``, ``metrics.jsonl`` in our
trainer's schema (``rollout_metrics`` of the episodes, then TRL's loss statistics
under our names, every other TRL log value as ``trl/<name>``), TensorBoard events,
``eval.json`` and ``checkpoint/model``. Held-out evaluation is ours
(``training.evaluation.evaluate``, experts off), every ``eval_every`` updates and at
the end, on the main process; with sharded weights (DeepSpeed ZeRO-3, FSDP) only at
the end, from the saved model. Launch it with ``accelerate launch`` for several
GPUs or nodes: the processes, DeepSpeed and vLLM are TRL's and accelerate's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import PrinterCallback, TrainerCallback

from eapo_gym.problems import ProblemSet, load_problems

from ..training.agent import rollout_metrics
from ..training.config import TrainConfig
from ..training.evaluation import evaluate
from ..training.policy import hub_kernels_allowed, load_policy
from ..training.registry import agent_class
from ..training.run import (
    CHECKPOINT,
    MetricsLog,
    check_out,
    draw_episodes,
    episode_rng,
    evaluation_due,
    finish_run,
    model_to_load,
    seed_everything,
    start_run,
    update_row,
)
from .trl_rollout import EpisodeRollout, TrainingStepCallback, environment_reward
from .trl_settings import check_engine_settings, generation_settings, grpo_args

# TRL's log names for the statistics our trainer logs under its own names.
OUR_NAMES = {
    "loss": "loss",
    "grad_norm": "grad_norm",
    "clip_ratio/region_mean": "clip_fraction",
    "kl": "kl",
    "frac_reward_zero_std": "all_equal_groups",
    "sampling/sampling_logp_difference/mean": "logprob_gap_mean",  # vLLM's log-probs against the trainer's
    "sampling/sampling_logp_difference/max": "logprob_gap_max",
}


class MetricsCallback(TrainerCallback):
    """One metrics.jsonl row per update and the held-out evaluations, on the main process."""

    def __init__(
        self, config: TrainConfig, rollout: EpisodeRollout, tokenizer, log: MetricsLog | None, progress: bool
    ) -> None:
        self.config, self.rollout, self.tokenizer, self.log = config, rollout, tokenizer, log
        self.evaluate_in_memory = True
        self.final: dict[str, float] | None = None
        self.bar = tqdm(
            total=config.steps, desc=f"{config.algo} train (trl)", disable=not progress or not log
        )

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        seconds = time.perf_counter() - self.started
        episodes = self.rollout.episodes
        self.row = update_row(rollout_metrics(episodes, self.rollout.rollout_seconds), seconds)
        self.row["trained_episodes"] = float(len(episodes))
        if (
            self.log is not None
            and self.evaluate_in_memory
            and evaluation_due(state.global_step, self.config)
        ):
            self.final = evaluate(model, self.tokenizer, self.config)
            self.row.update(self.final)
            model.train()
        self.bar.update(1)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if self.log is None or "loss" not in (logs or {}):
            return
        trl = {OUR_NAMES.get(name, f"trl/{name}"): value for name, value in logs.items()}
        self.log.write(state.global_step, {**self.row, **trl})

    def on_train_end(self, args, state, control, **kwargs) -> None:
        self.bar.close()


@dataclass
class TRLRun:
    """A built run: the trainer, its rollout and its metrics callback."""

    trainer: Any
    rollout: EpisodeRollout
    metrics: MetricsCallback
    config: TrainConfig


def build(config: TrainConfig, progress: bool = True) -> TRLRun:
    """Load the starting policy and build ``GRPOTrainer`` with our rollout, reward and callbacks."""
    from datasets import Dataset
    from trl import GRPOTrainer

    check_engine_settings(config)
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    use_cpu = config.device == "cpu" or not torch.cuda.is_available()
    args = grpo_args(config, processes, use_cpu)
    out = Path(config.out)
    check_out(config)
    with args.main_process_first(desc="starting model"):  # a preset is built once, by the main process
        model_path = model_to_load(config, None)  # checked as the native engine checks it
    main = args.process_index == 0
    seed_everything(config.seed)
    dtype = config.dtype if config.dtype != "auto" else "float32" if use_cpu else "bfloat16"
    model, tokenizer = load_policy(model_path, "cpu", dtype, config.lora_rank, config.hub_kernels)
    config = start_run(config, resuming=False, main=main)
    rules = agent_class(config.algo).training_episodes(config)
    args.generation_kwargs = generation_settings(args, model, tokenizer, lock_queries=not rules.consults)
    rollout = EpisodeRollout(config, tokenizer, rules)
    problems = load_problems(config.problems, "train", list(config.train_difficulties) or None)
    log = MetricsLog(out, config.tensorboard, 0) if main else None
    metrics = MetricsCallback(config, rollout, tokenizer, log, progress)
    with hub_kernels_allowed(config.hub_kernels):  # with kl_beta > 0 TRL loads its reference model
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=environment_reward,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": training_prompts(config, problems)}),
            processing_class=tokenizer,
            callbacks=[TrainingStepCallback(rollout), metrics],
            rollout_func=rollout,
        )
    trainer.remove_callback(PrinterCallback)
    metrics.evaluate_in_memory = not sharded(trainer)
    return TRLRun(trainer, rollout, metrics, config)


def training_prompts(config: TrainConfig, problems: ProblemSet) -> list[str]:
    """The problem ids of every update, in order: the ones our loop draws (a single process's)."""
    prompts = []
    for step in range(1, config.steps + 1):
        rng = episode_rng(config.seed, step)
        indices, _ = draw_episodes(rng, len(problems), config.problems_per_step, 0)
        prompts += [problems[i].id for i in indices]
    return prompts


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train ``config.algo`` (grpo or eapo) with ``GRPOTrainer``; return the final evaluation (main
    process; the others return an empty dict)."""
    run = build(config, progress)
    started = time.perf_counter()
    run.trainer.train()
    return conclude(run, time.perf_counter() - started)


def conclude(run: TRLRun, train_seconds: float) -> dict[str, Any]:
    """After training: save the model, evaluate it unless done at the last update, write eval.json."""
    config, metrics = run.config, run.metrics
    model_dir = Path(config.out) / CHECKPOINT / "model"
    run.trainer.save_model(str(model_dir))
    if metrics.log is None:
        return {}
    tokenizer = run.rollout.tokenizer
    tokenizer.save_pretrained(str(model_dir))
    final = metrics.final
    if final is None:  # sharded weights: evaluate the saved model
        saved, _ = load_policy(model_dir, config.device, config.dtype, hub_kernels=config.hub_kernels)
        final = evaluate(saved, tokenizer, config)
        metrics.log.write(config.steps, final)
    metrics.log.close()
    return finish_run(config, final, train_seconds)


def sharded(trainer) -> bool:
    """Whether the trainer shards the weights across processes (DeepSpeed ZeRO-3 or FSDP)."""
    if trainer.is_fsdp_enabled:
        return True
    plugin = trainer.accelerator.state.deepspeed_plugin if trainer.is_deepspeed_enabled else None
    return plugin is not None and plugin.zero_stage == 3
