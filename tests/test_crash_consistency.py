"""A training process killed with SIGKILL at any instant loses no checkpointed update: after each kill the run
directory is consistent, and ``--resume`` finishes the run to the weights and metrics of an uninterrupted run.

The processes are forked from the test (no interpreter start-up per kill); the kill instants are drawn with a
fixed seed, uniformly over an uninterrupted process's duration, so they land in start-up, updates, evaluation
and the writes of config.json, metrics.jsonl, checkpoints and eval.json alike.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from eapo_agents.cli import main
from eapo_agents.training.run import (
    CHECKPOINT,
    CONFIG,
    FINAL_EVAL,
    TIMING_METRICS,
    checkpoint_state,
    holds_run,
    read_metrics,
)

KILLS, SEED, STEPS = 20, 29, 3
FLAGS = [
    "--steps", str(STEPS), "--save-every", "1", "--eval-every", "2", "--problems-per-step", "2",
    "--group-size", "2", "--train-difficulties", "1", "--eval-difficulties", "1", "--eval-problems", "2",
    "--eval-k", "1", "--max-new-tokens", "24", "--tensorboard", "false", "--device", "cpu",
]  # fmt: skip
TIMEOUT = 300.0  # seconds a process may take here (a loaded 2-core machine)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the training processes")


def run(argv: list[str], log: Path, kill_after: float | None = None) -> float | None:
    """Run ``eapo-gym argv`` in a forked process, one thread, output to ``log``; SIGKILL it ``kill_after``
    seconds in. The seconds it took if it finished first (exit status 0 asserted), None if it was killed."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(output, 1), os.dup2(output, 2)
            torch.set_num_threads(1)
            main(argv)
            code = 0
        except SystemExit as exit_info:
            code = exit_info.code if isinstance(exit_info.code, int) else 1
        finally:
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        seconds = time.monotonic() - started
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, (
                f"eapo-gym {' '.join(argv)}: {log.read_text()[-500:]}"
            )
            return seconds
        if kill_after is not None and seconds >= kill_after:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        assert seconds < TIMEOUT, "timed out"
        time.sleep(0.005)


def next_start(out: Path, model: Path) -> list[str]:
    """What a user runs after a crash: ``--resume`` if a checkpoint holds an update, else the command again
    with ``--overwrite`` (no finished update to lose) or as it was (nothing written yet)."""
    if checkpoint_state(out) is not None:
        return ["train", "--resume", "--out", str(out)]
    return ["train", "--model", str(model), *FLAGS, "--out", str(out), *(["--overwrite"] * holds_run(out))]


def assert_consistent(out: Path) -> None:
    """What a crash may leave: readable settings, a loadable checkpoint (or none), and a metrics log in which
    every checkpointed update appears exactly once (a torn last line is dropped)."""
    if (out / CONFIG).exists():
        assert json.loads((out / CONFIG).read_text())["steps"] == STEPS
    state = checkpoint_state(out)
    saved = state["step"] if state is not None else 0
    steps = [row["step"] for row in read_metrics(out) if "step_seconds" in row]
    assert all(steps.count(step) == 1 for step in range(1, saved + 1)), (saved, steps)
    assert steps == sorted(set(steps)), steps


def assert_same_run(out: Path, reference: Path) -> None:
    def stable(rows: list[dict]) -> list[dict]:
        return [{name: value for name, value in row.items() if name not in TIMING_METRICS} for row in rows]

    rows, expected = read_metrics(out), read_metrics(reference)
    assert [row["step"] for row in rows if "step_seconds" in row] == list(range(1, STEPS + 1))
    assert stable(rows) == stable(expected)
    assert stable([json.loads((out / FINAL_EVAL).read_text())]) == stable(
        [json.loads((reference / FINAL_EVAL).read_text())]
    )
    weights = load_file(out / CHECKPOINT / "model" / "model.safetensors")
    expected_weights = load_file(reference / CHECKPOINT / "model" / "model.safetensors")
    assert weights.keys() == expected_weights.keys()
    assert all(torch.equal(weights[name], expected_weights[name]) for name in weights)


def finished(out: Path) -> bool:
    state = checkpoint_state(out)
    return state is not None and state["step"] == STEPS and (out / FINAL_EVAL).exists()


def test_sigkill_at_random_instants_loses_no_checkpointed_update(tiny_model_dir, tmp_path):
    reference, out, log = tmp_path / "reference", tmp_path / "run", tmp_path / "process.log"
    duration = run(["train", "--model", str(tiny_model_dir), *FLAGS, "--out", str(reference)], log)
    rng = random.Random(SEED)
    killed = runs = 0
    for _ in range(KILLS):
        if run(next_start(out, tiny_model_dir), log, kill_after=rng.uniform(0, duration)) is None:
            killed += 1
            assert_consistent(out)
        if finished(out):  # the run ended before its instant (or was killed after its last write)
            assert_same_run(out, reference)
            shutil.rmtree(out)
            runs += 1
    while not finished(out):
        run(next_start(out, tiny_model_dir), log)
    assert_same_run(out, reference)
    print(f"{killed} kills over {runs + 1} runs of {duration:.1f} s each uninterrupted", file=sys.stderr)
    assert killed >= KILLS // 2
