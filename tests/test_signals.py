"""SIGTERM and SIGINT on real processes: ``train`` and ``compare`` end every child, checkpoint the finished
updates and keep finished runs; a resume continues to the same metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from eapo_agents.cli import main
from eapo_agents.training.run import TIMING_METRICS, checkpoint_state

FAST = [
    "--problems-per-step", "2", "--group-size", "2", "--train-difficulties", "1", "--eval-difficulties", "1",
    "--eval-problems", "2", "--eval-k", "1", "--tensorboard", "false",
]  # fmt: skip
TIMEOUT = 240  # seconds any one process may take here (a loaded 2-core machine)


def updates(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [row for row in map(json.loads, lines) if "step_seconds" in row]


def stable(rows: list[dict]) -> list[dict]:
    return [{name: value for name, value in row.items() if name not in TIMING_METRICS} for row in rows]


def start(argv: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "2"}  # the tests' own thread count: the same numbers
    command = [sys.executable, "-m", "eapo_agents.cli", *argv]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
    )


def wait_for(condition, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def stop(
    process: subprocess.Popen, signum: int, group: bool = False
) -> tuple[int, str, list[psutil.Process]]:
    """Send ``signum`` to the process (``group``: to its whole process group, as Ctrl-C in a terminal does);
    the exit status, the last line on stderr and the children it had. Nothing on stderr is a traceback."""
    children = psutil.Process(process.pid).children(recursive=True)
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, error = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert "Traceback" not in error, error  # e.g. compare's workers stopping
    return process.returncode, error.strip().splitlines()[-1], children


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    gone, alive = psutil.wait_procs(processes, timeout=10)
    return alive


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_train_and_the_resume_reaches_the_same_metrics(
    signum, tiny_model_dir, tmp_path, capsys
):
    run, straight = tmp_path / "run", tmp_path / "straight"
    flags = ["--model", str(tiny_model_dir), "--steps", "5", "--save-every", "100", *FAST]
    process = start(["train", *flags, "--out", str(run)])
    wait_for(lambda: len(updates(run)) >= 1, process)
    status, line, children = stop(process, signum)
    done = len(updates(run))
    assert status == 128 + signum
    assert line == (
        f"eapo-gym train: stopped by {signal.Signals(signum).name} after update {done}; checkpoint in "
        f"{run}/checkpoint; eapo-gym train --resume --out {run} continues"
    )
    assert 1 <= done < 5 and not still_running(children)
    assert checkpoint_state(run)["step"] == done
    interrupted = updates(run)
    main(["train", "--resume", "--out", str(run)])
    printed = capsys.readouterr()
    assert (
        f"resuming {run} from its checkpoint at update {done}: updates {done + 1}-5"
        in printed.out + printed.err
    )
    assert updates(run)[:done] == interrupted  # finished updates kept as they were, timings included
    main(["train", *flags, "--out", str(straight)])
    assert stable(updates(run)) == stable(updates(straight))


@pytest.mark.parametrize(("signum", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_signal_stops_compare_workers_keeps_finished_runs_and_the_same_command_resumes(
    signum, group, tmp_path
):
    runs = tmp_path / "runs"
    steps = 30  # enough that the signal lands while GRPO still trains, on a quiet machine too
    argv = ["compare", "--methods", "base,grpo", "--seeds", "0", "--steps", str(steps), "--train-levels", "1",
            "--eval-problems", "2", "--eval-k", "1", "--eval-every", "100", "--workers", "2",
            "--out", str(runs), "--results", str(tmp_path / "results")]  # fmt: skip
    grpo, base = runs / "grpo" / "seed0", runs / "base" / "seed0"
    process = start(argv)
    wait_for(lambda: (base / "eval_declined.json").exists() and len(updates(grpo)) >= 1, process)
    status, line, children = stop(process, signum, group)
    assert status == 128 + signum
    assert line == (
        f"eapo-gym compare: stopped by {signal.Signals(signum).name}; finished runs kept, the others "
        "checkpointed; the same command resumes them"
    )
    assert children and not still_running(children)  # the workers ended with it
    done = len(updates(grpo))
    assert 1 <= done < steps and checkpoint_state(grpo)["step"] == done, done
    finished = {path: path.stat().st_mtime_ns for path in base.rglob("*") if path.is_file()}
    interrupted = updates(grpo)
    main(argv)
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # the finished run was reused
    assert updates(grpo)[:done] == interrupted  # resumed, not restarted: the first updates are as they were
    assert [row["step"] for row in updates(grpo)] == list(range(1, steps + 1))
    assert (grpo / "eval_declined.json").exists()
