"""Data parallel training through accelerate, launched by torchrun: two CPU processes stay identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"


def test_two_processes_train_on_different_rollouts_with_averaged_gradients(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "eapo_agents.cli", "train", "--plugin", "ddp_probe", "--algo", "grpo-probe",
        "--model", str(tiny_model_dir), "--out", str(out), "--steps", "2", "--problems-per-step", "2",
        "--group-size", "4", "--train-difficulties", "1", "--eval-difficulties", "1", "--eval-problems", "2",
        "--eval-k", "1", "--tensorboard", "false", "--lr", "1e-3", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [
        [json.loads(line) for line in (out / f"probe_rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)
    ]
    assert [row["step"] for row in ranks[0]] == [row["step"] for row in ranks[1]] == [1, 2]
    for first, second in zip(*ranks, strict=True):
        assert first["checksum"] == pytest.approx(second["checksum"], rel=1e-6)  # replicas stay identical
    assert ranks[0][0]["checksum"] != ranks[0][1]["checksum"]  # and they did train
    assert any(a["problems"] != b["problems"] for a, b in zip(*ranks, strict=True))  # on their own rollouts
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2] and rows[0]["processes"] == 2.0  # logged once, by rank 0
    assert (out / "checkpoint" / "model" / "config.json").exists() and (out / "eval.json").exists()
