"""Data parallel training through accelerate, launched by torchrun (accelerate's own CPU launcher needs
MPI): two CPU processes stay identical, and both engines split one global batch between them, drawing
what one process draws."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eapo_agents.training.config import TrainConfig
from eapo_agents.training.environments import make_vector_env
from eapo_agents.training.run import draw_episodes, episode_rng

PLUGINS = Path(__file__).parent / "plugins"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def launch_two_processes(flags: list[str], out: Path) -> list[list[dict]]:
    """``eapo-gym train`` in two CPU processes, recording each rollout's draws (``draws_probe``); the
    draws of each process, one entry per rollout."""
    draws = out.parent / "draws"
    draws.mkdir()
    command = [*TORCHRUN, "-m", "eapo_agents.cli", "train", "--plugin", "draws_probe", "--out", str(out)]
    command += flags
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "DRAWS_PROBE_DIR": str(draws)}  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [[json.loads(line) for line in (draws / f"rank{r}.jsonl").read_text().splitlines()] for r in "01"]


def assert_one_process_draws(ranks: list[list[dict]], seed: int, problems: int, group: int, levels) -> None:
    """Each update, process 0 played the first half of what one process draws for the whole batch, in
    order (problem and episode seed), and process 1 the second half."""
    config = TrainConfig(seed=seed, problems_per_step=problems, group_size=group, train_difficulties=levels)
    source = make_vector_env(config, 1, "train", config.train_difficulties).problems
    assert [len(rollouts) for rollouts in ranks] == [2, 2]
    for step, (first, second) in enumerate(zip(*ranks, strict=True), start=1):
        indices, seeds = draw_episodes(episode_rng(seed, step), len(source), problems, problems * group)
        drawn = [(source[indices[k]].id, seeds[group * k + j]) for k in range(problems) for j in range(group)]
        played = [list(zip(rank["problems"], rank["seeds"], strict=True)) for rank in (first, second)]
        half = len(drawn) // 2
        assert played == [drawn[:half], drawn[half:]]


def test_two_processes_train_on_different_rollouts_with_averaged_gradients(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    ranks = launch_two_processes(
        [
            "--plugin", "ddp_probe", "--algo", "grpo-probe", "--model", str(tiny_model_dir), "--steps", "2",
            "--problems-per-step", "2", "--group-size", "4", "--train-difficulties", "1",
            "--eval-difficulties", "1", "--eval-problems", "2", "--eval-k", "1", "--tensorboard", "false",
            "--lr", "1e-3", "--device", "cpu",
        ],
        out,
    )  # fmt: skip
    assert_one_process_draws(ranks, seed=0, problems=2, group=4, levels=(1,))  # the batch is global
    probes = [
        [json.loads(line) for line in (out / f"probe_rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)
    ]
    assert [row["step"] for row in probes[0]] == [row["step"] for row in probes[1]] == [1, 2]
    for first, second in zip(*probes, strict=True):
        assert first["checksum"] == pytest.approx(second["checksum"], rel=1e-6)  # replicas stay identical
    assert probes[0][0]["checksum"] != probes[0][1]["checksum"]  # and they did train
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]  # logged once, by rank 0, with its share of the batch
    assert all(row["processes"] == 2.0 and row["trained_episodes"] == 4.0 for row in rows)
    assert (out / "checkpoint" / "model" / "config.json").exists() and (out / "eval.json").exists()


def test_the_trl_engine_splits_one_global_batch_as_ours_does(tiny_model_dir, tmp_path):
    """The TRL engine in two processes: the same global batch, draws and process count as ours."""
    out = tmp_path / "run"
    ranks = launch_two_processes(
        [
            "--engine", "trl", "--algo", "eapo", "--model", str(tiny_model_dir), "--steps", "2",
            "--problems-per-step", "2", "--group-size", "2", "--train-difficulties", "2",
            "--eval-difficulties", "1", "--eval-problems", "1", "--eval-k", "1", "--tensorboard", "false",
            "--device", "cpu", "--seed", "3",
        ],
        out,
    )  # fmt: skip
    assert_one_process_draws(ranks, seed=3, problems=2, group=2, levels=(2,))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "loss" in row]
    assert [row["step"] for row in updates] == [1, 2]
    assert all(row["processes"] == 2.0 and row["trained_episodes"] == 2.0 for row in updates)
    assert all("all_fail_groups" in row and "helped_episodes" in row for row in updates)  # group metrics
