"""What a training run is, whichever engine trains it (our loop or ``--engine trl``).

A run directory ``DIR`` holds ``config.json`` (the settings, as fixed at the first start, so a
resume keeps them), ``metrics.jsonl`` (one row per update, plus the evaluations), TensorBoard
events in ``DIR/tensorboard``, and ``eval.json`` (the final evaluation). The draws of update
``s`` (its problems, its episodes' seeds) come from ``episode_rng(seed, s)`` on both engines, so
one seed gives the same problems and episode seeds whichever engine trains.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TrainConfig
from .registry import agent_class


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


def run_settings(config: TrainConfig) -> TrainConfig:
    """The settings a run's first start fixes (``Agent.fixed_at_start``: EAPO's schedule length)."""
    return agent_class(config.algo).fixed_at_start(config)


def start_run(config: TrainConfig, resuming: bool, main: bool = True) -> TrainConfig:
    """The run's settings (on a first start, ``run_settings``); the main process writes them to
    ``DIR/config.json``, so a resume keeps them."""
    if not resuming:
        config = run_settings(config)
    if main:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return config


def episode_rng(seed: int, step: int, rank: int = 0) -> np.random.Generator:
    """The random draws of update ``step`` on process ``rank`` (under a launcher each process draws
    its own; process 0's are a single process's)."""
    return np.random.default_rng([seed, step, *([rank] if rank else [])])


def replay_rng(seed: int, step: int, rank: int = 0) -> np.random.Generator:
    """The seeds of update ``step``'s replayed groups on process ``rank`` (EAPO's ``help_only_failing``,
    the ``guide`` agent's hinted replays):
    a stream of its own. Its fourth entropy word is 1, where ``episode_rng``'s (three words at most, padded
    with zeros by ``SeedSequence``) is 0, so no process's episode draws coincide with it."""
    return np.random.default_rng([seed, step, rank, 1])


def draw_episodes(
    rng: np.random.Generator, problem_count: int, problems: int, episodes: int
) -> tuple[list[int], list[int]]:
    """An update's draws: ``problems`` indices into the training problems, then ``episodes`` env seeds."""
    indices = [int(i) for i in rng.integers(problem_count, size=problems)]
    return indices, [int(seed) for seed in rng.integers(2**31, size=episodes)]


def evaluation_due(step: int, config: TrainConfig) -> bool:
    """Evaluate after every ``eval_every`` updates and after the last."""
    return step % config.eval_every == 0 or step == config.steps


def finish_run(config: TrainConfig, final: dict[str, float], train_seconds: float) -> dict[str, Any]:
    """The final evaluation with the training time, written to ``DIR/eval.json``."""
    final = {**final, "train_seconds": train_seconds}
    (Path(config.out) / "eval.json").write_text(json.dumps(final, indent=2))
    return final
