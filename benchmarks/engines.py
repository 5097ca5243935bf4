"""The two training engines side by side: our trainer and TRL's ``GRPOTrainer`` on the same episodes.

    python -m benchmarks.engines [--algos grpo,eapo] [--steps 80] [--seed 0] [--model DIR]

Each (engine, algorithm) trains the same starting policy (the shipped warm-started tiny
policy, or ``--model``) for ``--steps`` updates of 8 problems x 8 episodes at difficulty 2,
lr 1e-4, and is evaluated by the same evaluator (128 test problems of difficulty 2, k = 4,
consultation locked) every 20 updates. Reported: the held-out curve, the final training
reward, seconds per update and the run's wall time. The engines share the algorithm's
episodes (environment, turn schedule, acceptance, query lock for GRPO) and, for one seed,
the problems and episode seeds of every update (``eapo_agents.training.run``), but not
their loss code, optimizer loop or generation: the comparison shows what a user gets from each.

Writes ``benchmarks/results/engines.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.rollout_speed import THREADS, machine_info, write_results
from eapo_agents.experiments.presets import tiny_policy_path
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.evaluation import evaluate
from eapo_agents.training.policy import load_policy

RESULTS = Path(__file__).parent / "results"
ENGINES = ("native", "trl")


def engine_config(
    engine: str, algo: str, steps: int, seed: int, model: str, out: str, eval_problems: int = 128
) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "engine": engine, "algo": algo, "model": model, "steps": steps, "seed": seed, "out": out,
            "problems_per_step": 8, "group_size": 8, "lr": 1e-4, "train_difficulties": (2,),
            "eval_difficulties": (2,), "eval_problems": eval_problems, "eval_k": 4,
            "eval_every": min(20, steps), "tensorboard": False,
            # no checkpoint before the end (the TRL engine saves only then)
            **({"save_every": steps + 1} if engine == "native" else {}),
        }
    )  # fmt: skip


def run_engine(config: TrainConfig) -> dict[str, Any]:
    """Train one run; its held-out curve after the start (shared by all runs), final training reward,
    s/update and wall time."""
    if config.engine == "trl":
        from eapo_agents.engines.trl_train import train
    else:
        from eapo_agents.training.loop import train
    started = time.perf_counter()
    train(config, progress=False)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "step_seconds" in row]
    return {
        "curve": [
            [row["step"], row["eval/avg_at_k"]] for row in rows if row["step"] and "eval/avg_at_k" in row
        ],
        "final_train_reward": statistics.mean(row["reward"] for row in updates[-10:]),
        "step_s": statistics.median(row["step_seconds"] for row in updates[1:]),
        "wall_s": wall,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Start: {100 * result['start_avg_at_k']:.1f}% avg@4 (held out, locked). "
        f"{result['args']['steps']} updates of 8 x 8 episodes, difficulty 2, seed {result['args']['seed']}, "
        f"{THREADS} threads, CPU.",
        "",
        "| algorithm | engine | avg@4 every 20 updates (%) | final | train reward, last 10 "
        "| s/update | wall s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, row in result["runs"].items():
        algo, engine = name.split("/")
        curve = " → ".join(f"{100 * value:.1f}" for _, value in row["curve"])
        lines.append(
            f"| {algo} | {engine} | {curve} | {100 * row['curve'][-1][1]:.1f} | "
            f"{row['final_train_reward']:.3f} | {row['step_s']:.2f} | {row['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def run_benchmark(
    algos: list[str], steps: int, seed: int, model: str, eval_problems: int = 128, out_dir: Path = RESULTS
) -> dict:
    torch.set_num_threads(THREADS)
    model = model or str(tiny_policy_path())
    command = ["python", "-m", "benchmarks.engines", "--algos", ",".join(algos), "--steps", str(steps)]
    command += ["--seed", str(seed)] + (["--model", model] if model != str(tiny_policy_path()) else [])
    start = engine_config("native", "grpo", steps, seed, model, "", eval_problems)
    result: dict[str, Any] = {
        "command": shlex.join(command),
        "args": {"steps": steps, "seed": seed},
        "machine": machine_info(),
        "start_avg_at_k": evaluate(*load_policy(model), start)["eval/avg_at_k"],
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for algo in algos:
            for engine in ENGINES:
                out = f"{scratch}/{engine}-{algo}"
                config = engine_config(engine, algo, steps, seed, model, out, eval_problems)
                result["runs"][f"{algo}/{engine}"] = run_engine(config)
    title = "Our trainer and TRL's GRPOTrainer, side by side"
    write_results(out_dir, "engines", title, result, markdown(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="grpo,eapo", help="comma-separated: grpo, eapo")
    parser.add_argument("--steps", type=int, default=80, help="updates per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="", help="starting policy (default: the shipped one)")
    args = parser.parse_args()
    result = run_benchmark([a for a in args.algos.split(",") if a], args.steps, args.seed, args.model)
    print(markdown(result))


if __name__ == "__main__":
    main()
