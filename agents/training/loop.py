"""The training loop every agent runs through: logging, evaluation, checkpoints, exact resume.

The run directory and what keeps it safe are ``training.run``'s; ``DIR/checkpoint`` holds the model
(``save_pretrained``), the optimizer and agent state, the RNG states and the step.

What a finished update recorded is never lost or rewritten:

- nothing is written until the settings, ``out`` (a run there is resumed or overwritten only when
  asked), the starting model and (``resume``) the checkpoint are checked and the model loaded;
  ``resume`` with no checkpoint, a damaged one, or fewer ``steps`` than the checkpoint holds is a
  ``SettingError`` (the run is kept as it is);
- checkpoints, ``config.json`` and ``eval.json`` are replaced whole; a crash at any instant leaves a
  run that ``resume`` finishes as an uninterrupted run would have;
- an update whose loss or gradient norm is NaN or infinite stops the run with
  ``NonFiniteError`` before anything of it is saved (the last checkpoint stays);
- experts that fail are reported per update, and stop the run (``ExpertsFailing``) if they never
  answered (``training.stopping.FailingExperts``);
- SIGTERM or SIGINT stops the run after the update in progress, checkpoints the
  finished updates and raises ``TrainingStopped``; ``resume`` continues it to the
  same metrics as an uninterrupted run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .agent import Agent
from .config import TrainConfig
from .distributed import make_accelerator
from .evaluation import evaluate
from .policy import autocast, load_policy
from .registry import agent_class
from .run import (
    CHECKPOINT,
    MetricsLog,
    check_out,
    evaluation_due,
    evaluation_problems,
    finish_run,
    model_to_load,
    resume_state,
    save_checkpoint,
    seed_everything,
    start_run,
    update_row,
)
from .stopping import FailingExperts, NonFiniteError, StopSignals, TrainingStopped, expert_failures

CHECKED_FINITE = ("loss", "grad_norm")  # an update's metrics that stop the run when NaN or infinite


def train(
    config: TrainConfig, progress: bool = True, on_step: Callable[[int, dict[str, float]], None] | None = None
) -> dict[str, Any]:
    """Train ``config.algo`` for ``config.steps`` updates; return the final evaluation.

    ``on_step(step, metrics)`` is called after every logged update (e.g. to drive
    an outer progress bar). Under ``accelerate launch`` every process trains on its
    own rollouts and the main one logs, evaluates and saves (``training.distributed``);
    the others return an empty dict. With ``config.resume`` a run continues from
    ``config.out``'s checkpoint. Raises ``SettingError`` before writing anything,
    ``NonFiniteError`` or ``TrainingStopped`` as the module docstring says.
    """
    accelerator = make_accelerator(config.device)
    main = accelerator is None or accelerator.is_main_process
    out = Path(config.out)
    check_out(config)
    state = resume_state(config) if config.resume else None
    model_path = model_to_load(config, state)
    seed_everything(config.seed)
    device = str(accelerator.device) if accelerator is not None else config.device
    model, tokenizer = load_policy(model_path, device, config.dtype, config.lora_rank, config.hub_kernels)
    config = start_run(config, state is not None, main)
    agent = agent_class(config.algo)(model, tokenizer, config)
    agent.accelerator = accelerator
    start = 0
    if state is not None:
        agent.load_state_dict(state["agent"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        start = state["step"]
        if main and progress:
            tqdm.write(
                f"resuming {out} from its checkpoint at update {start}: updates {start + 1}-{config.steps}"
            )
    log = MetricsLog(out, config.tensorboard, start) if main else None
    started = time.perf_counter()
    try:
        with StopSignals() as stop:
            final = run_updates(agent, config, log, start, stop, progress, on_step)
    finally:
        if log is not None:
            log.close()
    if log is None:
        return {}
    final = finish_run(config, final, time.perf_counter() - started)
    save_checkpoint(out, agent, config.steps if agent.trains else 0, config)  # the last: the run is finished
    return final


def run_updates(
    agent: Agent,
    config: TrainConfig,
    log: MetricsLog | None,
    start: int,
    stop: StopSignals,
    progress: bool,
    on_step: Callable[[int, dict[str, float]], None] | None,
) -> dict[str, float]:
    """Updates ``start + 1 .. steps``, logging, evaluating and checkpointing (``log`` is None off the main
    process); the final evaluation. Stops between updates once ``stop`` has caught a signal."""
    out, accelerator = Path(config.out), agent.accelerator
    steps = config.steps if agent.trains else 0
    saved = done = start
    final = None
    experts = FailingExperts(config.expert_failure_share, config.expert_failure_stop)
    bar = tqdm(
        range(start + 1, steps + 1),
        desc=f"{config.algo} train",
        disable=not progress or log is None,
        initial=start,
        total=steps,
    )
    for step in bar:
        if stop.signum is not None:
            if log is not None and done > saved:
                save_checkpoint(out, agent, done, config)
            raise TrainingStopped(stop.signum, _stopped(stop.name, done, out))
        tick = time.perf_counter()
        with autocast(agent.device, config.dtype):
            metrics = agent.train_step(step)
        bad = {name: metrics[name] for name in CHECKED_FINITE if not math.isfinite(metrics.get(name, 0.0))}
        if bad:
            shown = ", ".join(f"{name} {value}" for name, value in bad.items())
            kept = f"the checkpoint of update {saved} is unchanged" if saved else "no checkpoint was written"
            raise NonFiniteError(f"update {step} gave {shown}; stopped before saving it: {kept}")
        done = step
        for line in experts.check(step, metrics.get("expert_calls", 0.0), metrics.get("expert_errors", 0.0),
                                  expert_failures(vars(agent).get("envs"))):  # fmt: skip
            tqdm.write(line)
        if log is None:
            continue
        processes = accelerator.num_processes if accelerator is not None else None
        metrics = update_row(metrics, time.perf_counter() - tick, processes)
        if evaluation_due(step, config):
            final = evaluate_agent(agent, config, evaluation_problems(step, config))
            metrics.update(final)
        log.write(step, metrics)
        if on_step is not None:
            on_step(step, metrics)
        if step % config.save_every == 0 and step < steps:  # the last once eval.json is written
            save_checkpoint(out, agent, step, config)
            saved = step
    if log is not None and final is None:
        final = evaluate_agent(agent, config)
        log.write(steps, final)
    return final or {}


def _stopped(signal_name: str, done: int, out: Path) -> str:
    if done == 0:
        return f"stopped by {signal_name} before the first update finished; nothing to keep"
    return (
        f"stopped by {signal_name} after update {done}; checkpoint in {out / CHECKPOINT}; "
        f"eapo-gym train --resume --out {out} continues"
    )


def evaluate_agent(agent: Agent, config: TrainConfig, problems: int | None = None) -> dict[str, float]:
    """The held-out evaluation as ``agent`` is evaluated (on ``problems`` per level, default
    ``eval_problems``), with its duration (``eval_seconds``)."""
    started = time.perf_counter()
    metrics = evaluate(
        agent.model,
        agent.tokenizer,
        config,
        problems=problems,
        with_experts=agent.eval_with_experts,
        first_turn=agent.first_turn,
    )
    return {**metrics, "eval_seconds": time.perf_counter() - started}


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
