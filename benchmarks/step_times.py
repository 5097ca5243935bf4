"""Wall time of one update per algorithm on the tiny preset, split into rollout and the rest.

    python -m benchmarks.step_times [--algos grpo,eapo,ppo,sft,distill] [--steps 5]
                                    [--difficulty 2] [--problems 8] [--group 8] [--model DIR]

Each algorithm trains ``--steps`` updates through ``eapo_agents.training.loop.train`` from the same
starting policy (the warm-started tiny preset, built and cached on first use, or ``--model``):
RL agents play ``--problems`` x ``--group`` episodes per update on arithmetic of
``--difficulty`` (the level ``eapo-gym compare`` trains on), SFT and distill take a batch of
``--problems`` x ``--group`` traces. Reported per algorithm, as medians over the updates after
the first: seconds per update, of which rollout (``collect_groups``: sampling and env steps),
the rest being the loss, backward and optimizer step; policy turns per episode, policy tokens
per update and tokens/s. EAPO's acceptance ρ_s = 1/s makes its first updates consult most.

Writes ``benchmarks/results/step_times.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.rollout_speed import THREADS, machine_info, write_results
from eapo_agents.experiments.presets import with_starting_model
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.loop import train

RESULTS = Path(__file__).parent / "results"
ALGOS = ("grpo", "eapo", "ppo", "sft", "distill")


def time_algorithm(algo: str, steps: int, difficulty: int, problems: int, group: int, model: str) -> dict:
    """Train ``algo`` for ``steps`` updates in a temporary directory; medians of its per-update metrics."""
    with tempfile.TemporaryDirectory() as out:
        supervised = {"sft_batch_size": problems * group} if algo in ("sft", "distill") else {}
        config = TrainConfig.from_dict(
            {
                "algo": algo,
                "model": model,
                "steps": steps,
                "out": out,
                "device": "cpu",
                "train_difficulties": (difficulty,),
                "problems_per_step": problems,
                "group_size": group,
                "eval_problems": 1,
                "eval_k": 1,
                "eval_every": steps + 1,
                "save_every": steps + 1,
                "tensorboard": False,
                **supervised,
            }
        )
        train(with_starting_model(config), progress=False)
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "step_seconds" in row][1:]  # the first is warm-up

    def median(key: str) -> float | None:
        values = [row[key] for row in updates if key in row]
        return statistics.median(values) if values else None

    rests = [row["step_seconds"] - row["rollout_seconds"] for row in updates if "rollout_seconds" in row]
    return {
        "step_s": median("step_seconds"),
        "rollout_s": median("rollout_seconds"),
        "rest_s": statistics.median(rests) if rests else None,
        "turns_per_episode": median("turns"),
        "policy_tokens": median("policy_tokens"),
        "tokens_per_s": median("tokens_per_s"),
        "step_s_runs": [row["step_seconds"] for row in updates],
    }


def markdown(result: dict[str, Any]) -> str:
    args = result["args"]
    batch = args["problems"] * args["group"]
    lines = [
        f"{args['problems']} problems x {args['group']} episodes (or {batch} traces) per update, "
        f"difficulty {args['difficulty']}, median of {args['steps'] - 1} updates after a warm-up, "
        f"{THREADS} threads, CPU.",
        "",
        "| algorithm | s/update | rollout (s) | loss + backward + step (s) | turns/episode "
        "| policy tokens/update |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for algo, row in result["algorithms"].items():
        lines.append(
            f"| {algo} | {row['step_s']:.2f} | {cell(row['rollout_s'], 2)} | {cell(row['rest_s'], 2)} | "
            f"{cell(row['turns_per_episode'], 2)} | {cell(row['policy_tokens'], 0)} |"
        )
    return "\n".join(lines)


def run_benchmark(
    algos: list[str],
    steps: int,
    difficulty: int = 2,
    problems: int = 8,
    group: int = 8,
    model: str = "",
    out_dir: Path = RESULTS,
) -> dict[str, Any]:
    """Time every algorithm; write ``step_times.json`` and ``.md`` under ``out_dir``."""
    torch.set_num_threads(THREADS)
    command = ["python", "-m", "benchmarks.step_times", "--algos", ",".join(algos), "--steps", str(steps)]
    command += ["--difficulty", str(difficulty), "--problems", str(problems), "--group", str(group)]
    command += ["--model", model] if model else []
    result = {
        "command": shlex.join(command),
        "args": {"steps": steps, "difficulty": difficulty, "problems": problems, "group": group},
        "policy": model or "tiny preset (warm-started)",
        "machine": machine_info(),
        "algorithms": {
            algo: time_algorithm(algo, steps, difficulty, problems, group, model) for algo in algos
        },
    }
    write_results(out_dir, "step_times", "Step time per algorithm", result, markdown(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default=",".join(ALGOS), help="comma-separated --algo names")
    parser.add_argument("--steps", type=int, default=5, help="updates per algorithm, the first unmeasured")
    parser.add_argument("--difficulty", type=int, default=2, help="training difficulty")
    parser.add_argument("--problems", type=int, default=8, help="problems per update")
    parser.add_argument("--group", type=int, default=8, help="episodes per problem")
    parser.add_argument("--model", default="", help="starting policy directory (default: the tiny preset)")
    args = parser.parse_args()
    algos = [name for name in args.algos.split(",") if name]
    result = run_benchmark(algos, args.steps, args.difficulty, args.problems, args.group, args.model)
    print(markdown(result))


if __name__ == "__main__":
    main()
