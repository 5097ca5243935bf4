"""``eapo-gym compare``: the paper's table at small scale, every method from the same warm-started policy.

Each method trains for the same number of updates on the same 64 rollouts (or
traces) per update, at a training difficulty where the warm-started policy is
rarely right, and is evaluated on the disjoint test split at that difficulty
and one harder, experts off (the workflow baseline excepted). Runs are
``(method, seed)`` jobs spread over worker processes; a finished job is reused
when its configuration is unchanged, so an interrupted comparison resumes.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eapo_agents.experiments.presets import expert_model_path, tiny_policy_path, warm_start_accuracy
from eapo_agents.experiments.report import write_report
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.loop import train


@dataclass(frozen=True)
class Method:
    """A row of the table: an algorithm with its overrides of the shared configuration."""

    name: str
    algo: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""


METHODS = (
    Method("base", "base", description="the warm-started policy, no training"),
    Method("sft", "sft", description="SFT on the reference solutions of the training problems"),
    Method("workflow", "workflow", description="the base policy with K experts consulted at inference"),
    Method("distill", "distill", description="SFT on the expert's own verified solutions"),
    Method("grpo", "grpo", description="self-exploratory RL (GRPO with DAPO's clip-higher)"),
    Method("ppo", "ppo", description="PPO with a value head and GAE"),
    Method("eapo", "eapo", description="GRPO with K=3 parallel experts, acceptance 1/s"),
)
ABLATIONS = (
    Method("eapo_k1", "eapo", {"max_queries": 1}, "EAPO, one query per turn"),
    Method("eapo_sequential", "eapo", {"parallel_experts": False}, "EAPO, experts asked one after another"),
    Method("eapo_noisy", "eapo", {"expert_noise": 0.3}, "EAPO, 30% of expert replies wrong"),
    Method(
        "eapo_constant", "eapo", {"acceptance": "constant:1"}, "EAPO, every query answered (no annealing)"
    ),
    Method("eapo_model_expert", "eapo", {"experts": "model"}, "EAPO, a larger tiny model as the expert"),
    Method("eapo_offpolicy", "eapo", {"expert_token_coef": 1.0}, "EAPO, expert tokens learned off-policy"),
    Method("eapo_slow_anneal", "eapo", {"acceptance_scale": 10.0}, "EAPO, rho = min(1, 10/s)"),
)
QUICK_METHODS = ("base", "sft", "workflow", "grpo", "eapo")
# The paper's avg@32 (AIME24/25 + AIMO25, 7B policy, 32B expert); rows without a counterpart are None.
PAPER_AVG = {
    "base": 42.53,
    "workflow": 49.39,
    "distill": 43.24,
    "grpo": 59.16,
    "eapo": 64.07,
    "eapo_sequential": 61.79,
    "eapo_model_expert": 61.55,  # the paper's weaker (14B) expert
}
COST_RANK = {"ppo": 0, "eapo": 0, "grpo": 1, "sft": 2, "distill": 2, "workflow": 3, "base": 3}
SUPERVISED_LR = 5e-4  # sft/distill: supervised steps need a larger step size than policy gradients


@dataclass
class CompareConfig:
    """What ``eapo-gym compare`` runs; ``quick`` is one seed of ``QUICK_METHODS``."""

    quick: bool = False
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = tuple(m.name for m in METHODS + ABLATIONS)
    steps: int = 40
    eval_every: int = 10
    eval_k: int = 8
    eval_problems: int = 32
    train_difficulty: int = 0  # 0: the easiest level where the warm start is right at most sparse_max
    sparse_max: float = 0.25
    lr: float = 1e-4
    workers: int = 2
    policy: str = ""  # starting policy directory; empty: the tiny preset's warm start
    expert_model: str = ""  # the model expert's directory; empty: the tiny preset's expert model
    out: str = "runs/compare"
    results: str = "benchmarks/results"

    @classmethod
    def quick_preset(cls, **changes: Any) -> CompareConfig:
        return cls(quick=True, seeds=(0,), methods=QUICK_METHODS, **changes)


def method_by_name(name: str) -> Method:
    for method in METHODS + ABLATIONS:
        if method.name == name:
            return method
    raise ValueError(f"unknown method {name!r}; choose from {[m.name for m in METHODS + ABLATIONS]}")


def pick_train_difficulty(accuracy: dict[int, float], sparse_max: float) -> int:
    """The easiest level at which the warm-started policy's accuracy is at most ``sparse_max``."""
    for level in sorted(accuracy):
        if accuracy[level] <= sparse_max:
            return level
    return max(accuracy) + 1


def job_config(method: Method, seed: int, compare: CompareConfig, level: int, policy: Path) -> TrainConfig:
    overrides = dict(method.overrides)
    if overrides.get("experts") == "model":
        overrides["experts"] = f"model:{compare.expert_model or expert_model_path()}"
    supervised = method.algo in ("sft", "distill")
    return TrainConfig.from_dict(
        {
            "algo": method.algo,
            "model": str(policy),
            "steps": compare.steps,
            "seed": seed,
            "out": str(Path(compare.out) / method.name / f"seed{seed}"),
            "train_difficulties": (level,),
            "eval_difficulties": (level, level + 1),
            "lr": SUPERVISED_LR if supervised else compare.lr,
            "eval_every": compare.eval_every,
            "eval_k": compare.eval_k,
            "eval_problems": compare.eval_problems,
            "save_every": 10**9,
            "tensorboard": False,
            **overrides,
        }
    )


def finished(config: TrainConfig) -> bool:
    """Whether ``config.out`` holds a finished run of exactly ``config`` (it is then reused)."""
    out = Path(config.out)
    return (out / "eval.json").exists() and json.loads((out / "config.json").read_text()) == json.loads(
        json.dumps(config.to_dict())
    )


def _run_job(config: TrainConfig, queue, threads: int) -> None:
    """One training run in a worker process; reports each update through ``queue``."""
    import torch

    torch.set_num_threads(threads)
    out = Path(config.out)
    if out.exists():
        for stale in ("metrics.jsonl", "eval.json"):
            (out / stale).unlink(missing_ok=True)
    updates: list[int] = []
    train(config, progress=False, on_step=lambda step, metrics: (updates.append(step), queue.put(1)))
    queue.put(config.steps - len(updates))  # evaluation-only agents make no updates


def run_jobs(configs: Sequence[TrainConfig], workers: int) -> None:
    """Run the unfinished configs, ``workers`` processes at a time; one progress bar over all updates."""
    todo = [config for config in configs if not finished(config)]
    total = sum(config.steps for config in configs)
    reused = total - sum(config.steps for config in todo)
    threads = max(1, _cpu_count() // max(workers, 1))
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(workers, maxtasksperchild=1) as pool:
        queue = manager.Queue()
        pending = [pool.apply_async(_run_job, (config, queue, threads)) for config in todo]
        with tqdm(total=total, initial=reused, desc="compare (updates, all runs)", unit="upd") as bar:
            while not all(job.ready() for job in pending) or not queue.empty():
                while not queue.empty():
                    bar.update(queue.get())
                time.sleep(0.2)
        for job in pending:
            job.get()  # re-raise a worker's exception


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def read_run(out: Path) -> dict[str, Any]:
    """Final evaluation, the evaluation curve, the training log's totals and its per-step series."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = json.loads((out / "eval.json").read_text())
    updates = [row for row in rows if "step_seconds" in row]
    curve = [(row["step"], row["eval/avg_at_k"]) for row in rows if "eval/avg_at_k" in row]
    series = {
        name: [(row["step"], row[name]) for row in updates if name in row]
        for name in ("consult_rate", "acceptance_rate", "all_equal_groups", "reward", "accuracy")
    }
    return {
        "final": final,
        "curve": curve,
        "series": series,
        "train_seconds": final.get("train_seconds", 0.0),
        "expert_calls": sum(row.get("expert_calls", 0.0) for row in updates)
        + final.get("eval/expert_calls", 0),
        "expert_chars": sum(row.get("expert_chars", 0.0) for row in updates)
        + final.get("eval/expert_chars", 0),
    }


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def aggregate(runs: dict[str, dict[int, dict[str, Any]]], level: int) -> dict[str, dict[str, Any]]:
    """Per method: mean and std over seeds of the held-out metrics, cost, and the mean curves."""
    methods = {}
    for name, by_seed in runs.items():
        seeds = sorted(by_seed)
        final = [by_seed[s]["final"] for s in seeds]
        row: dict[str, Any] = {}
        for key, metric in (
            ("avg_at_k", "eval/avg_at_k"),
            ("pass_at_k", "eval/pass_at_k"),
            ("var_over_samples", "eval/avg_at_k_var"),
            ("avg_at_k_train_level", f"eval/d{level}/avg_at_k"),
            ("avg_at_k_harder_level", f"eval/d{level + 1}/avg_at_k"),
            ("format_rate", "eval/format_rate"),
            ("consult_rate_eval", "eval/consult_rate"),
            ("response_tokens", "eval/response_tokens"),
        ):
            row[key], row[f"{key}_std"] = _mean_std([f[metric] for f in final])
        row["wall_s"], row["wall_s_std"] = _mean_std([by_seed[s]["train_seconds"] for s in seeds])
        row["expert_calls"] = float(np.mean([by_seed[s]["expert_calls"] for s in seeds]))
        row["expert_chars"] = float(np.mean([by_seed[s]["expert_chars"] for s in seeds]))
        row["per_seed_avg_at_k"] = [f["eval/avg_at_k"] for f in final]
        row["curve"] = _mean_series([by_seed[s]["curve"] for s in seeds])
        row["series"] = {
            key: _mean_series([by_seed[s]["series"][key] for s in seeds])
            for key in by_seed[seeds[0]]["series"]
        }
        methods[name] = row
    return methods


def _mean_series(series: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float]]:
    steps = sorted(set.intersection(*(set(step for step, _ in s) for s in series))) if series else []
    return [(step, float(np.mean([dict(s)[step] for s in series]))) for step in steps]


def updates_to_reach(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first evaluated update at which ``curve`` is at least ``target``."""
    return next((step for step, value in curve if value >= target), None)


def run_compare(compare: CompareConfig) -> dict[str, Any]:
    """Train and evaluate every (method, seed); write compare JSON, markdown and plots; return the JSON."""
    started = time.perf_counter()
    policy = Path(compare.policy) if compare.policy else tiny_policy_path()
    accuracy = warm_start_accuracy(policy) if not compare.train_difficulty else {}
    level = compare.train_difficulty or pick_train_difficulty(accuracy, compare.sparse_max)
    methods = [method_by_name(name) for name in compare.methods]
    configs = {
        (m.name, seed): job_config(m, seed, compare, level, policy) for m in methods for seed in compare.seeds
    }
    longest_first = sorted(configs.values(), key=lambda config: COST_RANK.get(config.algo, 0))
    run_jobs(longest_first, compare.workers)
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for (name, seed), config in configs.items():
        runs.setdefault(name, {})[seed] = read_run(Path(config.out))
    results_by_method = aggregate(runs, level)
    base_curve = results_by_method.get("base", {}).get("curve", [])
    for row in results_by_method.values():  # every method starts from the base policy's score
        if base_curve and (not row["curve"] or row["curve"][0][0] > 0):
            row["curve"] = [(0, base_curve[-1][1]), *row["curve"]]
    if "grpo" in results_by_method:
        target = results_by_method["grpo"]["avg_at_k"]
        for row in results_by_method.values():
            row["updates_to_grpo_final"] = updates_to_reach(row["curve"], target)
    result = {
        "command": command_line(compare),
        "seeds": list(compare.seeds),
        "train_difficulty": level,
        "eval_difficulties": [level, level + 1],
        "warm_start_accuracy": {str(k): v for k, v in accuracy.items()},
        "compare_config": dataclasses.asdict(compare),
        "train_config": {
            name: config.to_dict() for (name, seed), config in configs.items() if seed == compare.seeds[0]
        },
        "paper_avg_at_32": PAPER_AVG,
        "descriptions": {m.name: m.description for m in methods},
        "methods": results_by_method,
        "total_wall_s": time.perf_counter() - started,
    }
    write_report(result, Path(compare.results), "compare_quick" if compare.quick else "compare")
    return result


def command_line(compare: CompareConfig) -> str:
    """The ``eapo-gym compare`` invocation that reproduces ``compare``."""
    default = CompareConfig.quick_preset() if compare.quick else CompareConfig()
    words = ["eapo-gym compare"] + (["--quick"] if compare.quick else [])
    for spec in dataclasses.fields(CompareConfig):
        value = getattr(compare, spec.name)
        if spec.name != "quick" and value != getattr(default, spec.name):
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            words.append(f"--{spec.name.replace('_', '-')} {text}")
    return " ".join(words)
