"""Where the time of ``eapo-gym compare`` goes: every run's wall time split by phase, summed per method.

    python -m benchmarks.compare_profile [--runs runs/compare] [--wall SECONDS] [--command "..."]

Reads the run directories a finished comparison left (``RUNS/METHOD/seedN``): each run's
``timing.json`` (written by the compare worker), ``metrics.jsonl`` and ``eval.json``. Phases:

- process start: from the parent's start of the worker to the worker running (a fork from the fork
  server; the server's own imports, once per comparison, fall in the first runs' start);
- rollout: ``rollout_seconds`` summed over the updates, of which the expert rounds
  (``expert_seconds``, the time ``ExpertMathVectorEnv`` waited on experts);
- update: the rest of each update (log-probabilities, loss, backward, optimizer step);
- evaluation: the periodic and final evaluations (``eval_seconds``) and the declined one;
- setup and checkpoints: the rest of ``train()`` (model load, run files, the final checkpoint).

``--wall``: the comparison's own wall time (its ``total_wall_s``), to show how much of it the
workers filled. Beside the table, EAPO's time per token as a multiple of GRPO's (``versus``), per
policy token and per sequence token (every token the update runs through the model), for the rollout,
the update and the whole step. Writes ``benchmarks/results/compare_profile.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.rollout_speed import machine_info, write_results

RESULTS = Path(__file__).parent / "results"
PHASES = ("start", "rollout", "experts", "update", "evaluation", "setup")
STEP_PHASES = ("rollout", "update", "step")  # an update's step is its rollout and the update


def run_phases(run: Path) -> dict[str, float]:
    """One run's seconds per phase (``experts`` is part of ``rollout``), and its updates, policy tokens and
    sequence tokens (every token the update runs through the model; 0 in runs from before that metric)."""
    timing = json.loads((run / "timing.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "step_seconds" in row]
    steps = sum(row["step_seconds"] for row in updates)
    rollout = sum(row.get("rollout_seconds", 0.0) for row in updates)
    evaluations = sum(row.get("eval_seconds", 0.0) for row in rows)
    return {
        "start": timing["start_s"],
        "rollout": rollout,
        "experts": sum(row.get("expert_seconds", 0.0) for row in updates),
        "update": steps - rollout,
        "evaluation": evaluations + timing["declined_eval_s"],
        "setup": max(0.0, timing["train_s"] - steps - evaluations),
        "updates": float(len(updates)),
        "policy_tokens": sum(row.get("policy_tokens", 0.0) for row in updates),
        "sequence_tokens": sum(row.get("sequence_tokens", 0.0) for row in updates),
    }


def profile(runs_dir: Path) -> dict[str, dict[str, float]]:
    """Per method, each phase summed over its seeds, with ``runs`` and ``total`` (worker seconds)."""
    methods: dict[str, dict[str, float]] = {}
    for timing in sorted(runs_dir.glob("*/seed*/timing.json")):
        totals = methods.setdefault(timing.parent.parent.name, defaultdict(float))
        for phase, seconds in run_phases(timing.parent).items():
            totals[phase] += seconds
        totals["runs"] += 1
    for totals in methods.values():
        totals["total"] = sum(totals[phase] for phase in PHASES if phase != "experts")
    ranked = sorted(methods.items(), key=lambda item: -item[1]["total"])
    return {name: dict(totals) for name, totals in ranked}


def versus(methods: dict[str, dict[str, float]], method: str, baseline: str) -> dict[str, float]:
    """``method``'s seconds per token over ``baseline``'s, for rollout, update and step, per policy token
    and per sequence token; empty if either is missing or has no tokens."""
    if not all(methods.get(name, {}).get("sequence_tokens") for name in (method, baseline)):
        return {}
    ratios = {}
    for tokens in ("policy_tokens", "sequence_tokens"):
        for phase in STEP_PHASES:
            per_token = [
                (row["rollout"] + row["update"] if phase == "step" else row[phase]) / row[tokens]
                for row in (methods[method], methods[baseline])
            ]
            ratios[f"{phase}_per_{tokens[:-1]}"] = per_token[0] / per_token[1]
    return ratios


def markdown(result: dict[str, Any]) -> str:
    methods = result["methods"]
    whole = sum(row["total"] for row in methods.values())
    lines = [
        "Worker seconds per method, summed over its seeds; the share is of all workers' seconds. "
        "Rollout includes the expert rounds (their own column too).",
        "",
        "| method | runs | start | rollout | of which experts | update | evaluation | setup + checkpoints "
        "| total | share | s per 1k policy tokens (step) | s per 1k sequence tokens (step) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in methods.items():
        step = row["rollout"] + row["update"]
        per_token, per_sequence_token = (
            f"{1000 * step / row[tokens]:.2f}" if row.get(tokens) else "-"
            for tokens in ("policy_tokens", "sequence_tokens")
        )
        lines.append(
            f"| {name} | {row['runs']:.0f} | {row['start']:.0f} | {row['rollout']:.0f} "
            f"| {row['experts']:.0f} "
            f"| {row['update']:.0f} | {row['evaluation']:.0f} | {row['setup']:.0f} | {row['total']:.0f} "
            f"| {100 * row['total'] / whole:.1f}% | {per_token} | {per_sequence_token} |"
        )
    totals = {phase: sum(row[phase] for row in methods.values()) for phase in PHASES}
    lines.append(
        f"| **all** | {sum(row['runs'] for row in methods.values()):.0f} | {totals['start']:.0f} "
        f"| {totals['rollout']:.0f} | {totals['experts']:.0f} | {totals['update']:.0f} "
        f"| {totals['evaluation']:.0f} | {totals['setup']:.0f} | {whole:.0f} | 100% | | |"
    )
    ratios = result.get("eapo_over_grpo")
    if ratios:
        lines += ["", "EAPO's seconds per token over GRPO's:", "", "| per | rollout | update | step |",
                  "|---|---:|---:|---:|"]  # fmt: skip
        for tokens in ("policy_token", "sequence_token"):
            cells = " | ".join(f"{ratios[f'{phase}_per_{tokens}']:.2f}x" for phase in STEP_PHASES)
            lines.append(f"| {tokens.replace('_', ' ')} | {cells} |")
    if result.get("wall_s"):
        wall = result["wall_s"]
        lines += ["", f"Comparison wall time {wall:.0f} s ({wall / 60:.1f} min); the workers' seconds "
                  f"fill {whole / wall:.2f} workers on average."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/compare", help="the comparison's --out")
    parser.add_argument("--wall", type=float, default=0.0, help="the comparison's wall seconds")
    parser.add_argument("--command", default="eapo-gym compare", help="the command that made the runs")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON and table go")
    args = parser.parse_args()
    methods = profile(Path(args.runs))
    result = {
        "command": args.command,
        "profile_command": f"python -m benchmarks.compare_profile --runs {args.runs} --wall {args.wall:.0f}",
        "machine": machine_info(),
        "wall_s": args.wall,
        "methods": methods,
        "eapo_over_grpo": versus(methods, "eapo", "grpo"),
    }
    write_results(Path(args.out), "compare_profile", "Time of the comparison by method and phase", result,
                  markdown(result))  # fmt: skip
    print(markdown(result))


if __name__ == "__main__":
    main()
