"""The training loop every agent runs through: logging, evaluation, checkpoints, exact resume.

The run directory is ``training.run``'s; ``DIR/checkpoint`` holds the model
(``save_pretrained``), the optimizer and agent state, the RNG states and the step.

What a finished update recorded is never lost or rewritten:

- nothing is written until the settings, the starting model and (``resume``) the
  checkpoint are checked; ``resume`` with no checkpoint, a damaged one, or fewer
  ``steps`` than the checkpoint holds is a ``SettingError`` (the run is kept as it is);
- a checkpoint is written to ``checkpoint.tmp`` and then renamed into place;
- an update whose loss or gradient norm is NaN or infinite stops the run with
  ``NonFiniteError`` before anything of it is saved (the last checkpoint stays);
- SIGTERM or SIGINT stops the run after the update in progress, checkpoints the
  finished updates and raises ``TrainingStopped``; ``resume`` continues it to the
  same metrics as an uninterrupted run.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .agent import Agent
from .config import SettingError, TrainConfig
from .distributed import make_accelerator
from .evaluation import evaluate
from .policy import autocast, check_model_directory, load_policy, save_policy
from .registry import agent_class
from .run import MetricsLog, evaluation_due, finish_run, seed_everything, start_run
from .stopping import NonFiniteError, StopSignals, TrainingStopped

CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"
CHECKED_FINITE = ("loss", "grad_norm")  # an update's metrics that stop the run when NaN or infinite


def save_checkpoint(out: Path, agent: Agent, step: int, config: TrainConfig) -> None:
    """Write ``out/checkpoint`` whole or not at all: into ``checkpoint.tmp``, then renamed into place.
    Weights that are not all finite are refused (``NonFiniteError``) and the last checkpoint stays."""
    if not all(bool(torch.isfinite(p).all()) for p in agent.model.parameters()):
        raise NonFiniteError(f"update {step} left non-finite weights; the checkpoint in {out} is unchanged")
    staging, final, previous = (out / f"{CHECKPOINT}{suffix}" for suffix in (".tmp", "", ".old"))
    shutil.rmtree(staging, ignore_errors=True)
    save_policy(agent.model, agent.tokenizer, staging / "model")
    state = {
        "step": step,
        "config": config.to_dict(),
        "agent": agent.state_dict(),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
    }
    torch.save(state, staging / STATE_FILE)
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    staging.rename(final)
    shutil.rmtree(previous, ignore_errors=True)


def checkpoint_state(out: Path) -> dict[str, Any] | None:
    """The trainer state of ``out``'s checkpoint; None without one; ``SettingError`` if it is damaged."""
    directory, previous = out / CHECKPOINT, out / f"{CHECKPOINT}.old"
    if not directory.exists() and previous.exists():  # stopped between the two renames of a save
        previous.rename(directory)
    if not (directory / STATE_FILE).exists():
        return None
    try:
        check_model_directory(directory / "model")
        return torch.load(directory / STATE_FILE, weights_only=False)
    except Exception as error:
        raise SettingError("resume", f"the checkpoint in {out} is damaged ({error}); left as it is") from None


def resume_state(config: TrainConfig) -> dict[str, Any]:
    """The trainer state that ``config.resume`` continues from, checked before anything is written."""
    out = Path(config.out)
    state = checkpoint_state(out)
    if state is None:
        raise SettingError("resume", f"{out} has no checkpoint to resume")
    if state["config"]["algo"] != config.algo:
        saved = state["config"]["algo"]
        raise SettingError("resume", f"the checkpoint in {out} is a {saved} run's, not {config.algo}'s")
    if config.steps <= state["step"]:
        raise SettingError(
            "steps",
            f"expected more than {state['step']}, the update {out}'s checkpoint holds (fewer would drop "
            f"finished updates), got {config.steps}",
        )
    return state


def model_to_load(config: TrainConfig, state: dict[str, Any] | None) -> Path:
    """The checkpoint's model when resuming, else ``config.model``, checked. A preset names no directory
    here: its caller resolves it first (``experiments.presets.with_starting_model``, as the command does)."""
    if state is not None:
        return Path(config.out) / CHECKPOINT / "model"
    if not config.model:
        raise SettingError(
            "model",
            f"empty: give a model directory, or resolve --preset {config.preset} to its policy first "
            "(eapo_agents.experiments.presets.with_starting_model)",
        )
    try:
        check_model_directory(config.model)
    except ValueError as error:
        raise SettingError("model", str(error), config.model) from None
    return Path(config.model)


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
    state = resume_state(config) if config.resume else None
    if main:
        model_path = model_to_load(config, state)
    config = start_run(config, state is not None, main)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if not main:  # the main process checked and resolved it before writing anything
        model_path = model_to_load(config, state)
    seed_everything(config.seed)
    device = str(accelerator.device) if accelerator is not None else config.device
    model, tokenizer = load_policy(model_path, device, config.dtype, config.lora_rank, config.hub_kernels)
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
    return finish_run(config, final, time.perf_counter() - started)


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
            saved = step
    if log is not None and final is None:
        final = evaluate_agent(agent, config)
        log.write(steps, final)
        save_checkpoint(out, agent, steps, config)
    return final or {}


def _stopped(signal_name: str, done: int, out: Path) -> str:
    if done == 0:
        return f"stopped by {signal_name} before the first update finished; nothing to keep"
    return (
        f"stopped by {signal_name} after update {done}; checkpoint in {out / CHECKPOINT}; "
        f"eapo-gym train --resume --out {out} continues"
    )


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
