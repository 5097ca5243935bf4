"""The training loop every agent runs through: logging, evaluation, checkpoints, exact resume.

``DIR/metrics.jsonl`` gets one row per update (plus the evaluations), TensorBoard
events go to ``DIR/tensorboard``, and ``DIR/checkpoint`` holds the model
(``save_pretrained``), the optimizer and agent state, the RNG states and the step.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from eapo_agents.training.agent import Agent
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.distributed import make_accelerator
from eapo_agents.training.evaluation import evaluate
from eapo_agents.training.policy import autocast, load_policy, save_policy, starting_model_path
from eapo_agents.training.registry import agent_class

CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"


class MetricsLog:
    """Appends rows to metrics.jsonl and, optionally, TensorBoard."""

    def __init__(self, out: Path, tensorboard: bool, resume_step: int) -> None:
        self.path = out / "metrics.jsonl"
        rows = [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []
        kept = [row for row in rows if row["step"] <= resume_step]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(out: Path, agent: Agent, step: int, config: TrainConfig) -> None:
    directory = out / CHECKPOINT
    save_policy(agent.model, agent.tokenizer, directory / "model")
    state = {
        "step": step,
        "config": config.to_dict(),
        "agent": agent.state_dict(),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
    }
    torch.save(state, directory / f"{STATE_FILE}.tmp")
    (directory / f"{STATE_FILE}.tmp").replace(directory / STATE_FILE)


def train(
    config: TrainConfig, progress: bool = True, on_step: Callable[[int, dict[str, float]], None] | None = None
) -> dict[str, Any]:
    """Train ``config.algo`` for ``config.steps`` updates; return the final evaluation.

    ``on_step(step, metrics)`` is called after every logged update (e.g. to drive
    an outer progress bar). Under ``accelerate launch`` every process trains on its
    own rollouts and the main one logs, evaluates and saves (``training.distributed``);
    the others return an empty dict. With ``config.resume`` a run continues from
    ``config.out``'s checkpoint, if there is one.
    """
    accelerator = make_accelerator(config.device)
    main = accelerator is None or accelerator.is_main_process
    out = Path(config.out)
    state_path = out / CHECKPOINT / STATE_FILE
    resuming = config.resume and state_path.exists()
    model_path = out / CHECKPOINT / "model" if resuming else None
    if main:
        if not resuming:
            # builds a preset once, if needed
            model_path = starting_model_path(config.model, config.preset, config.device, config.dtype)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    model_path = model_path or starting_model_path(config.model, config.preset, config.device, config.dtype)
    seed_everything(config.seed)
    device = str(accelerator.device) if accelerator is not None else config.device
    lora_rank = config.lora_rank if not resuming else 0
    model, tokenizer = load_policy(model_path, device, config.dtype, lora_rank, config.hub_kernels)
    agent = agent_class(config.algo)(model, tokenizer, config)
    agent.accelerator = accelerator
    start = 0
    if resuming:
        state = torch.load(state_path, weights_only=False)
        agent.load_state_dict(state["agent"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        start = state["step"]
    log = MetricsLog(out, config.tensorboard, start) if main else None
    steps = config.steps if agent.trains else 0
    started = time.perf_counter()
    final = None
    bar = tqdm(
        range(start + 1, steps + 1),
        desc=f"{config.algo} train",
        disable=not progress or not main,
        initial=start,
        total=steps,
    )
    for step in bar:
        tick = time.perf_counter()
        with autocast(agent.device, config.dtype):
            metrics = agent.train_step(step)
        if log is None:
            continue
        metrics["step_seconds"] = time.perf_counter() - tick
        if metrics.get("policy_tokens"):
            metrics["tokens_per_s"] = metrics["policy_tokens"] / metrics["step_seconds"]
        if accelerator is not None:
            metrics["processes"] = float(accelerator.num_processes)
        if step % config.eval_every == 0 or step == steps:
            final = evaluate_agent(agent, config)
            metrics.update(final)
        log.write(step, metrics)
        if on_step is not None:
            on_step(step, metrics)
        if step % config.save_every == 0 or step == steps:
            save_checkpoint(out, agent, step, config)
    if log is None:
        return {}
    if final is None:
        final = evaluate_agent(agent, config)
        log.write(steps, final)
        save_checkpoint(out, agent, steps, config)
    log.close()
    final = {**final, "train_seconds": time.perf_counter() - started}
    (out / "eval.json").write_text(json.dumps(final, indent=2))
    return final


def evaluate_agent(agent: Agent, config: TrainConfig) -> dict[str, float]:
    return evaluate(
        agent.model,
        agent.tokenizer,
        config,
        with_experts=agent.eval_with_experts,
        first_turn=agent.first_turn,
    )


def summary_line(config: TrainConfig, final: dict[str, Any]) -> str:
    """One line for the end of ``eapo-gym train``: what ran, how long, how well, where it is."""
    k = config.eval_k
    updates = config.steps if agent_class(config.algo).trains else 0
    return (
        f"{config.algo}: {updates} updates in {final['train_seconds']:.0f} s; held-out avg@{k} "
        f"{100 * final['eval/avg_at_k']:.1f}%, pass@{k} {100 * final['eval/pass_at_k']:.1f}%, "
        f"format {100 * final['eval/format_rate']:.0f}%, "
        f"consult rate {100 * final['eval/consult_rate']:.0f}% "
        f"(levels {','.join(map(str, config.eval_difficulties)) or 'all'}) -> {config.out}"
    )
