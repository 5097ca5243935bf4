"""The training loop every agent runs through: logging, evaluation, checkpoints, exact resume.

The run directory is ``training.run``'s; ``DIR/checkpoint`` holds the model
(``save_pretrained``), the optimizer and agent state, the RNG states and the step.
"""

from __future__ import annotations

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
from eapo_agents.training.policy import load_policy, save_policy, starting_model_path
from eapo_agents.training.registry import agent_class
from eapo_agents.training.run import MetricsLog, evaluation_due, finish_run, seed_everything, start_run

CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"


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
            model_path = starting_model_path(config.model, config.preset)  # builds a preset once, if needed
    config = start_run(config, resuming, main)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    model_path = model_path or starting_model_path(config.model, config.preset)
    seed_everything(config.seed)
    device = str(accelerator.device) if accelerator is not None else config.device
    model, tokenizer = load_policy(model_path, device, config.dtype, config.lora_rank if not resuming else 0)
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
        metrics = agent.train_step(step)
        if log is None:
            continue
        metrics["step_seconds"] = time.perf_counter() - tick
        if metrics.get("policy_tokens"):
            metrics["tokens_per_s"] = metrics["policy_tokens"] / metrics["step_seconds"]
        if accelerator is not None:
            metrics["processes"] = float(accelerator.num_processes)
        if evaluation_due(step, config):
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
    return finish_run(config, final, time.perf_counter() - started)


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
