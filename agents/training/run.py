"""What a training run is, whichever engine trains it (our loop or ``--engine trl``): its directory's layout.

A run directory ``DIR`` holds ``config.json`` (the settings, as fixed at the first start, so a
resume keeps them), ``metrics.jsonl`` (one row per update, plus the evaluations), TensorBoard
events in ``DIR/tensorboard``, ``checkpoint/`` (``checkpoint/model`` and, on our loop, the trainer
state) and ``eval.json`` (the final evaluation). The draws of update ``s`` (its problems, its
episodes' seeds) come from ``episode_rng(seed, s)`` on both engines, so one seed gives the same
problems and episode seeds whichever engine trains.

A finished update is never lost, whenever the process dies:

- ``check_out``: a directory that holds a run is continued (``resume``) or replaced (``overwrite``)
  only when asked to, and ``config.json`` is written (``start_run``) only once every check passed
  and the model loaded;
- ``config.json``, ``eval.json`` and the checkpoint are written whole or not at all (written,
  flushed to disk, renamed into place), so a crash leaves the old one or the new one;
- a crash in the middle of a ``metrics.jsonl`` row leaves a torn last line: ``MetricsLog`` drops it
  with one line saying so, and a resume re-plays the updates after the last checkpoint.

``device`` follows the machine, not the run: it is not stored, so a run resumes anywhere.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import SettingError, TrainConfig
from .policy import check_model_directory, save_policy
from .registry import agent_class
from .stopping import NonFiniteError

CONFIG, METRICS, FINAL_EVAL = "config.json", "metrics.jsonl", "eval.json"
CHECKPOINT, STATE_FILE = "checkpoint", "trainer_state.pt"
TENSORBOARD = "tensorboard"
NOT_STORED = ("resume", "overwrite", "device")  # how this start runs, not what the run is
RESUMABLE = ("steps", "out")  # what a resume may change (besides NOT_STORED): a run may move


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole or not at all: write a sibling, flush it to disk, rename."""
    staging = path.with_name(path.name + ".tmp")
    with staging.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    staging.replace(path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb+") as handle:
                os.fsync(handle.fileno())
    fsync_directory(directory)


class MetricsLog:
    """Appends rows to metrics.jsonl (each flushed to disk) and, optionally, TensorBoard.

    At a (re)start it keeps the rows up to ``resume_step`` (the checkpoint's update): the rows of
    updates after it are re-played. A torn last line, what a crash in the middle of a row leaves, is
    dropped with one line saying so; any other line that is not JSON is a damaged log (``SettingError``).
    """

    def __init__(self, out: Path, tensorboard: bool, resume_step: int) -> None:
        self.path = out / METRICS
        kept = [row for row in read_metrics(out, announce=True) if row["step"] <= resume_step]
        atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / TENSORBOARD), purge_step=resume_step + 1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(out: Path, announce: bool = False) -> list[dict[str, Any]]:
    """The rows of ``out/metrics.jsonl`` (none without it), less a torn last line (``announce``: say so)."""
    path = Path(out) / METRICS
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):  # a crash in the middle of the last row
                if announce:
                    print(f"{path}: dropped a torn last line (a crash while writing it); the updates after "
                          "the last checkpoint are re-played", file=sys.stderr)  # fmt: skip
                break
            raise SettingError(
                "resume", f"{path} line {number} is damaged (not JSON); left as it is"
            ) from None
    return rows


# the metrics that are durations or rates: they differ between identical runs (resumed or not)
TIMING_METRICS = ("step_seconds", "tokens_per_s", "rollout_seconds", "expert_seconds", "eval_seconds",
                  "train_seconds")  # fmt: skip


def update_row(metrics: dict[str, float], seconds: float, processes: int | None = None) -> dict[str, float]:
    """An update's metrics.jsonl row, on both engines: its metrics, its duration and throughput, and the
    number of processes (under a launcher)."""
    row = {**metrics, "step_seconds": seconds}
    if row.get("policy_tokens"):
        row["tokens_per_s"] = row["policy_tokens"] / seconds
    if processes is not None:
        row["processes"] = float(processes)
    return row


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_settings(config: TrainConfig) -> TrainConfig:
    """The settings a run's first start fixes (``Agent.fixed_at_start``: EAPO's schedule length)."""
    return agent_class(config.algo).fixed_at_start(config)


def stored_settings(config: TrainConfig) -> dict[str, Any]:
    """What config.json holds: the run's settings, without how this start runs (``NOT_STORED``)."""
    return {name: value for name, value in config.to_dict().items() if name not in NOT_STORED}


def saved_settings(out: Path) -> dict[str, Any] | None:
    """``out/config.json`` as written (None without one); ``SettingError`` if it is not a run's."""
    path = Path(out) / CONFIG
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SettingError("out", f"{path} is not a readable run configuration ({error})", out) from None
    if not isinstance(saved, dict):
        raise SettingError("out", f"{path} holds no setting: value pairs", out)
    return {name: value for name, value in saved.items() if name not in NOT_STORED}


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds (part of) a run: its settings, metrics or checkpoint."""
    return any((Path(out) / name).exists() for name in (CONFIG, METRICS, CHECKPOINT, f"{CHECKPOINT}.old"))


def check_out(config: TrainConfig) -> None:
    """``config.out`` can take this start: a directory (or nothing yet) that holds no run, unless the run
    is resumed or overwritten as asked. ``SettingError`` naming ``--out`` otherwise; nothing is written."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise SettingError("out", "is a file, not a directory", out)
    if config.resume or config.overwrite or not holds_run(out):
        return
    state = checkpoint_state(out)
    held = f"a run of {state['step']} finished updates" if state else "a run (no finished update yet)"
    raise SettingError(
        "out",
        f"holds {held}; --resume continues it, --overwrite deletes it and starts afresh",
        out,
    )


def clear_run(out: Path) -> None:
    """Delete the run in ``out`` (``overwrite``): its layout only, never other files. The checkpoints go
    first and config.json last, so a crash halfway leaves a run without a checkpoint, overwritten again."""
    checkpoints = (CHECKPOINT, f"{CHECKPOINT}.tmp", f"{CHECKPOINT}.old")
    for name in (
        *checkpoints,
        FINAL_EVAL,
        *(p.name for p in out.glob("eval_*.json")),
        METRICS,
        TENSORBOARD,
        CONFIG,
    ):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def start_run(config: TrainConfig, resuming: bool, main: bool = True) -> TrainConfig:
    """The run's settings (on a first start, ``run_settings``); the main process writes them to
    ``DIR/config.json`` (after clearing an overwritten run), so a resume keeps them. Call it once every
    check passed and the model loaded."""
    if not resuming:
        config = run_settings(config)
    if main:
        out = Path(config.out)
        if config.overwrite and not resuming:
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / CONFIG, json.dumps(stored_settings(config), indent=2))
    return config


def save_checkpoint(out: Path, agent, step: int, config: TrainConfig) -> None:
    """Write ``out/checkpoint`` whole or not at all: into ``checkpoint.tmp``, flushed to disk, then renamed
    into place. Weights that are not all finite are refused (``NonFiniteError``): the last one stays."""
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
    _fsync_tree(staging)
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    staging.rename(final)
    fsync_directory(out)
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
    read_metrics(out)  # a damaged log (not a torn last line) is refused before anything is written
    done = state["step"]
    if config.steps <= done and done == state["config"]["steps"]:
        raise SettingError(
            "resume", f"the run is already finished ({done} updates); pass --steps M > {done} to continue"
        )
    if config.steps <= done:
        raise SettingError(
            "steps",
            f"expected more than {done}, the update {out}'s checkpoint holds (fewer would drop "
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


def evaluation_problems(step: int, config: TrainConfig) -> int:
    """Problems per level of the evaluation after update ``step``: ``eval_problems`` after the last,
    ``curve_eval_problems`` (if set) before it. Evaluation draws on its own generator, so the curves'
    size changes neither the training nor the last evaluation."""
    return (
        config.eval_problems if step >= config.steps else config.curve_eval_problems or config.eval_problems
    )


def finish_run(config: TrainConfig, final: dict[str, float], train_seconds: float) -> dict[str, Any]:
    """The final evaluation with the training time, written to ``DIR/eval.json``."""
    final = {**final, "train_seconds": train_seconds}
    atomic_write_text(Path(config.out) / FINAL_EVAL, json.dumps(final, indent=2))
    return final
