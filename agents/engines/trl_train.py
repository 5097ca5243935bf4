"""``eapo-gym train --engine trl``: GRPO or EAPO episodes trained by TRL's ``GRPOTrainer``.

The run directory is our loop's (``training.run``): ``config.json``, ``metrics.jsonl`` in our
trainer's schema, one row per update (``rollout_metrics`` of the main process's episodes, the
algorithm's ``group_metrics``, ``processes`` under a launcher, then TRL's loss statistics under
our names and every other TRL log value as ``trl/<name>``: ``contract`` declares the keys only
one engine logs), TensorBoard events, ``eval.json`` and ``checkpoint/model``. Held-out
evaluation is ours (``training.evaluation.evaluate``, experts off), every ``eval_every``
updates and at the end, on the main process; with weights sharded by DeepSpeed ZeRO-3 only at
the end, from the saved model. Launch it with ``accelerate launch`` for several GPUs or nodes,
or ``torchrun --standalone --nproc_per_node N`` for CPU processes: the processes, DeepSpeed and
vLLM are TRL's and accelerate's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import PrinterCallback, TrainerCallback

from ..training.agent import rollout_metrics
from ..training.config import TrainConfig
from ..training.evaluation import evaluate
from ..training.policy import hub_kernels_allowed, load_policy
from ..training.registry import agent_class
from ..training.run import (
    CHECKPOINT,
    MetricsLog,
    check_out,
    evaluation_due,
    evaluation_problems,
    finish_run,
    model_to_load,
    seed_everything,
    start_run,
    update_row,
)
from ..training.stopping import FailingExperts, expert_failures
from .contract import TRL_METRIC_PREFIX, check_engine_settings, launched_processes
from .trl_rollout import EpisodeRollout, environment_reward, training_prompts
from .trl_settings import grpo_args, vllm_settings

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
    """One metrics.jsonl row per update (``epochs_per_batch`` optimizer steps of TRL's) and the held-out
    evaluations, on the main process."""

    def __init__(
        self, config: TrainConfig, rollout: EpisodeRollout, tokenizer, log: MetricsLog | None, progress: bool
    ) -> None:
        self.config, self.rollout, self.tokenizer, self.log = config, rollout, tokenizer, log
        self.passes = config.options.epochs_per_batch
        self.experts = FailingExperts(config.expert_failure_share, config.expert_failure_stop)
        self.evaluate_in_memory = True
        self.final: dict[str, float] | None = None
        self.bar = tqdm(
            total=config.steps, desc=f"{config.algo} train (trl)", disable=not progress or not log
        )

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        if state.global_step % self.passes == 0:  # an update's first pass
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        if state.global_step % self.passes:
            return
        seconds = time.perf_counter() - self.started
        episodes = self.rollout.episodes
        processes = args.world_size if args.world_size > 1 else None
        rollout = rollout_metrics(episodes, self.rollout.rollout_seconds, self.rollout.expert_seconds)
        self.row = update_row(rollout, seconds, processes)
        self.row.update(self.rollout.group_metrics, trained_episodes=float(len(episodes)))
        update = state.global_step // self.passes
        calls, failures = self.row["expert_calls"], self.row["expert_errors"]
        for line in self.experts.check(update, calls, failures, expert_failures(self.rollout.envs)):
            tqdm.write(line)
        if self.log is not None and self.evaluate_in_memory and evaluation_due(update, self.config):
            self.final = evaluate(
                model, self.tokenizer, self.config, problems=evaluation_problems(update, self.config)
            )
            self.row.update(self.final)
            model.train()
        self.bar.update(1)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if self.log is None or "loss" not in (logs or {}):
            return
        trl = {OUR_NAMES.get(name, f"{TRL_METRIC_PREFIX}{name}"): value for name, value in logs.items()}
        self.log.write(state.global_step // self.passes, {**self.row, **trl})

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

    processes = launched_processes()
    check_engine_settings(config, processes)
    use_cpu = config.device == "cpu" or not torch.cuda.is_available()
    args = grpo_args(config, processes, use_cpu)
    out = Path(config.out)
    check_out(config)
    model_path = model_to_load(config, None)  # checked as the native engine checks it
    main = args.process_index == 0
    seed_everything(config.seed)
    dtype = config.dtype if config.dtype != "auto" else "float32" if use_cpu else "bfloat16"
    model, tokenizer = load_policy(model_path, "cpu", dtype, config.lora_rank, config.hub_kernels)
    config = start_run(config, resuming=False, main=main)
    rollout = EpisodeRollout(config, tokenizer, agent_class(config.algo))
    if args.use_vllm:
        args.generation_kwargs = vllm_settings(args, tokenizer, not rollout.episode_rules.consults)
    log = MetricsLog(out, config.tensorboard, 0) if main else None
    metrics = MetricsCallback(config, rollout, tokenizer, log, progress)
    with hub_kernels_allowed(config.hub_kernels):  # with kl_beta > 0 TRL loads its reference model
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=environment_reward,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": training_prompts(config)}),
            processing_class=tokenizer,
            callbacks=[metrics],
            rollout_func=rollout,
        )
    trainer.remove_callback(PrinterCallback)
    metrics.evaluate_in_memory = not sharded(trainer)
    return TRLRun(trainer, rollout, metrics, config)


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train ``config.algo`` (grpo or eapo) with ``GRPOTrainer``; return the final evaluation (main
    process; the others return an empty dict)."""
    run = build(config, progress)
    started = time.perf_counter()
    try:
        run.trainer.train()
    finally:  # a run stopped by an error leaves its line on a line of its own
        run.metrics.bar.close()
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
    """Whether the trainer shards the weights across processes (DeepSpeed ZeRO-3; FSDP is refused)."""
    plugin = trainer.accelerator.state.deepspeed_plugin if trainer.is_deepspeed_enabled else None
    return plugin is not None and plugin.zero_stage == 3
