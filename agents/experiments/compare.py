"""``eapo-gym compare``: the paper's table at small scale, every method from the same warm-started policy.

Each method trains for the same number of updates on the same 64 rollouts (or
traces) per update, on a mix of difficulty levels chosen from the warm start's
*training-split* accuracy (``pick_train_levels``), and is evaluated on the
disjoint test split at those levels and one harder, with consultation locked as
in the paper (the primary column) and, beside it, declined. Runs are
``(method, seed)`` jobs spread over worker processes; a finished job is reused
when its configuration is unchanged, so an interrupted comparison resumes. A run
directory that holds a run with other settings is refused before any job starts,
unless ``overwrite`` asks to retrain it: a finished update is never silently lost.
SIGTERM or SIGINT stops every worker, each after checkpointing its finished
updates; the same command then resumes those runs from their checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..training.config import SettingError, TrainConfig, check_fields, option
from ..training.evaluation import evaluate
from ..training.loop import train
from ..training.policy import load_policy, pick_device
from ..training.registry import agent_class, built_in, summary
from ..training.run import (
    CHECKPOINT,
    FINAL_EVAL,
    atomic_write_text,
    checkpoint_state,
    holds_run,
    run_settings,
    saved_settings,
    stored_settings,
)
from ..training.stopping import ExpertsFailing, NonFiniteError, StopSignals, TrainingStopped
from .presets import check_preset, preset_path, warm_start_accuracy
from .report import HELP_METRICS, write_report

DECLINED_EVAL = "eval_declined.json"
TIMING = "timing.json"  # a job's phases in seconds: process start, train() and the declined evaluation
BASE_STEPS = 120  # the preregistered budget; longer runs are also reported at its multiples
START_UPDATES, END_UPDATES = 5, 10  # the all-fail share "at the start" and "at the end" averages these


@dataclass(frozen=True)
class Method:
    """A row of the table: an algorithm with its overrides of the shared configuration."""

    name: str
    algo: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def stage(algo: str) -> int:
    """0 evaluation only, 1 supervised, 2 reinforcement learning: the table's order of rows."""
    cls = agent_class(algo)
    return 0 if not cls.trains else 1 if cls.supervised else 2


# One row per built-in algorithm, described by its docstring: the registry is the only list of names.
METHODS = tuple(
    Method(name, name, description=summary(agent_class(name)))
    for name in sorted(built_in(), key=lambda name: (stage(name), name))
)
ABLATIONS = (
    Method(
        "workflow_scripted",
        "workflow",
        {"queries": "scripted"},
        "the workflow with a fixed first turn of K 'What is the next step?' queries (before 2026-12-04)",
    ),
    Method("eapo_fixed_turns", "eapo", {"turn_schedule": "constant:1"}, "EAPO, turn budget fixed at 10"),
    Method(
        "eapo_successive",
        "eapo",
        {"experts": "reference-successive"},
        "EAPO, K queries reveal K successive steps (the earlier default)",
    ),
    Method(
        "eapo_symbolic", "eapo", {"experts": "symbolic"}, "EAPO, a symbolic expert computes the sub-question"
    ),
    Method("eapo_cost", "eapo", {"consult_cost": 0.05}, "EAPO, each query costs 0.05 reward"),
    Method("eapo_fail_only", "eapo", {"help_only_failing": True}, "EAPO, help only for groups that all fail"),
    Method("eapo_k1", "eapo", {"max_queries": 1}, "EAPO, one query per turn"),
    Method("eapo_noisy", "eapo", {"expert_noise": 0.3}, "EAPO, 30% of expert replies wrong"),
    Method("eapo_model_expert", "eapo", {"experts": "model"}, "EAPO, a larger tiny model as the expert"),
    Method(
        "eapo_constant", "eapo", {"acceptance": "constant:1"}, "EAPO, every query answered (no annealing)"
    ),
)
QUICK_METHODS = ("base", "sft", "workflow", "grpo", "eapo")
# The paper's avg@32 (AIME24/25 + AIMO25, 7B policy, 32B expert); rows without a counterpart are None.
PAPER_AVG = {
    "base": 42.53,
    "workflow": 49.39,
    "distill": 43.24,
    "grpo": 59.16,
    "eapo": 64.07,
    "eapo_k1": 61.79,  # the paper's sequential ablation: one query per turn, so turns run out
    "eapo_model_expert": 61.55,  # the paper's weaker (14B) expert
}
RL_LR = 1e-4  # the family defaults that tuning.LR_FACTORS scale
SUPERVISED_LR = 5e-4  # sft/distill: supervised steps need a larger step size than policy gradients
# Each trained algorithm's settings as the preregistered tuning chose them (``eapo-gym compare --tune``,
# benchmarks/results/tuning.md); an ablation takes its algorithm's. An algorithm not here runs at its
# family's default rate.
TUNED: dict[str, dict[str, float]] = {  # chosen 2026-12-05, before any test-split run of them
    "sft": {"lr": 5e-5},
    "distill": {"lr": 5e-5},
    "grpo": {"lr": 1e-5},
    "ppo": {"lr": 1e-5, "value_coef": 0.5},
    "eapo": {"lr": 3.33e-5},
    "luffy": {"lr": 3.33e-5},
    "guide": {"lr": 1e-4},
    "hints": {"lr": 3.33e-5},
    "adaptive_hints": {"lr": 1e-4},
}


@dataclass
class CompareConfig:
    """What ``eapo-gym compare`` runs; ``quick`` is one seed of ``QUICK_METHODS``. Checked at construction
    (``SettingError``) by the same rules as ``TrainConfig``; ``device`` and ``dtype`` reach every run.

    ``preset`` names the warm-started policy and model expert every method starts from (``tiny``,
    shipped; ``small``, GPU-sized, see ``presets``); ``for_preset`` gives each preset's defaults.
    """

    quick: bool = False
    preset: str = "tiny"
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds, each a run of every method", at_least=0)
    methods: tuple[str, ...] = tuple(m.name for m in METHODS + ABLATIONS)
    steps: int = option(BASE_STEPS, "policy updates per method", at_least=1)
    eval_every: int = option(20, "updates between evaluations", at_least=1)
    eval_k: int = option(8, "samples per test problem", at_least=1)
    eval_problems: int = option(32, "test problems per level", at_least=1)
    curve_eval_problems: int = option(
        0, "test problems per level before the last evaluation (the curves; 0: --eval-problems)", at_least=0
    )
    train_levels: tuple[int, ...] = option(
        (), "empty: pick_train_levels on the warm start's training-split accuracy", at_least=1
    )
    learnable_max: float = option(0.5, "the level rule's most warm-start accuracy", at_least=0, at_most=1)
    eval_split: str = option(
        "test",
        "train: a validation run on training-split problems (preregistration pilots)",
        ("test", "train"),
    )
    lr: float = option(
        0.0, "one learning rate for every RL method; 0: each its tuned one (TUNED)", at_least=0
    )
    tune: bool = option(
        False, "run the preregistered tuning grid instead (tuning.py): short runs, train split"
    )
    workers: int = option(2, "runs in parallel", at_least=1)
    overwrite: bool = option(False, "retrain the runs in out whose settings differ (default: refuse them)")
    policy: str = ""  # starting policy directory; empty: the preset's warm start
    expert_model: str = ""  # the model expert's directory; empty: the preset's expert model
    out: str = option("runs/compare", "run directories, one per method and seed")
    results: str = option(
        "", "where the JSON, table and plots go; empty: --out (the committed ones: benchmarks/results)"
    )
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_preset(self.preset)
        for name in self.methods:
            method_by_name(name)
        TrainConfig(device=self.device, dtype=self.dtype)  # their rules

    @classmethod
    def quick_preset(cls, **changes: Any) -> CompareConfig:
        return cls(**{"quick": True, "seeds": (0,), "methods": QUICK_METHODS, **changes})

    @classmethod
    def for_preset(cls, preset: str = "tiny", quick: bool = False, **changes: Any) -> CompareConfig:
        """The defaults of ``preset`` (``PRESET_DEFAULTS``), then ``--quick``'s, then ``changes``."""
        settings = {**PRESET_DEFAULTS.get(preset, {}), "preset": preset, **changes}
        return cls.quick_preset(**settings) if quick else cls(**settings)

    @property
    def results_dir(self) -> Path:
        return Path(self.results or self.out)

    @property
    def stem(self) -> str:
        """The results' file name: compare, then ``_PRESET`` for a preset other than tiny, ``_stepsN`` for
        a budget other than 120 updates, ``_gpu`` on CUDA, ``_quick`` and ``_validation`` (on the
        training split), e.g. ``compare_small_gpu`` or ``compare_steps480``."""
        return (
            "compare"
            + ("" if self.preset == "tiny" else f"_{self.preset}")
            + ("" if self.steps == BASE_STEPS else f"_steps{self.steps}")
            + ("_gpu" if pick_device(self.device).type == "cuda" else "")
            + ("_quick" if self.quick else "")
            + ("_validation" if self.eval_split == "train" else "")
            if not self.tune
            else "tuning"
        )


# The GPU comparison of issue-sized budget: base, GRPO and EAPO over 2 seeds at the tiny run's 120
# updates, three runs sharing the GPU at a time. It fits about 8 minutes of an H200 once the whole
# EAPO step runs at the GPU benchmark's target speed (benchmarks/gpu_check.py).
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "small": {"seeds": (0, 1), "methods": ("base", "grpo", "eapo"), "workers": 3}
}


def method_by_name(name: str) -> Method:
    for method in METHODS + ABLATIONS:
        if method.name == name:
            return method
    raise SettingError(
        "methods", f"unknown method {name!r}; choose from {', '.join(m.name for m in METHODS + ABLATIONS)}"
    )


def pick_train_levels(accuracy: dict[int, float], learnable_max: float) -> tuple[int, ...]:
    """The preregistered rule: the easiest level where the warm start is right at most ``learnable_max``
    of the time (it still gives GRPO signal) and the next level (sparse: most groups all fail)."""
    level = next((level for level in sorted(accuracy) if accuracy[level] <= learnable_max), max(accuracy) + 1)
    return (level, level + 1)


def expected_length(config: TrainConfig) -> tuple[int, int]:
    """A sort key that puts the longest runs first, so that no worker is left with a long one at the end:
    multi-turn (consulting) RL, then other RL, supervised, evaluation only."""
    consults = agent_class(config.algo).training_episodes(config).consults
    return -stage(config.algo), -int(consults)


def starting_point(compare: CompareConfig) -> tuple[Path, tuple[int, ...]]:
    """The policy every method starts from, and the training levels (``compare.train_levels``, else the
    preregistered rule on its training-split accuracy)."""
    if compare.policy:
        policy = Path(compare.policy)
    else:
        policy = preset_path(compare.preset, "policy", None, compare.device, compare.dtype)
    if compare.train_levels:
        return policy, compare.train_levels
    return policy, pick_train_levels(warm_start_accuracy(policy, "train"), compare.learnable_max)


def job_config(
    method: Method, seed: int, compare: CompareConfig, levels: tuple[int, ...], policy: Path
) -> TrainConfig:
    overrides = dict(method.overrides)
    if overrides.get("experts") == "model":
        expert = compare.expert_model or preset_path(
            compare.preset, "expert", None, compare.device, compare.dtype
        )
        overrides["experts"] = f"model:{expert}"
    supervised = agent_class(method.algo).supervised
    tuned = TUNED.get(method.algo, {})
    lr = (
        compare.lr
        if compare.lr and not supervised
        else tuned.get("lr", SUPERVISED_LR if supervised else RL_LR)
    )
    return TrainConfig.from_dict(
        {
            "algo": method.algo,
            "model": str(policy),
            "steps": compare.steps,
            "seed": seed,
            "out": str(Path(compare.out) / method.name / f"seed{seed}"),
            "train_difficulties": levels,
            "eval_difficulties": (*levels, max(levels) + 1),
            "eval_split": compare.eval_split,
            **tuned,
            "lr": lr,
            "eval_every": compare.eval_every,
            "eval_k": compare.eval_k,
            "eval_problems": compare.eval_problems,
            "curve_eval_problems": compare.curve_eval_problems,
            "save_every": 10**9,
            "tensorboard": False,
            "device": compare.device,
            "dtype": compare.dtype,
            **overrides,
        }
    )


def finished(config: TrainConfig, declined: bool = True) -> bool:
    """Whether ``config.out`` holds a finished run of exactly ``config`` (it is then reused); with
    ``declined``, its declined evaluation too."""
    return (Path(config.out) / (DECLINED_EVAL if declined else FINAL_EVAL)).exists() and same_run(config)


def same_run(config: TrainConfig) -> bool:
    """Whether ``config.out``'s config.json is ``config``'s as its first start fixed it (``run_settings``),
    resumed or not, on whichever device."""
    return not differences(config)


def differences(config: TrainConfig) -> list[str]:
    """Where ``config.out``'s run differs from ``config``, e.g. ``steps 48, not 10`` (a setting its
    config.json predates counts at its default); ``["no config.json"]`` without one."""
    saved = saved_settings(Path(config.out))
    if saved is None:
        return ["no config.json"]
    defaults = stored_settings(TrainConfig(algo=saved.get("algo", config.algo)))
    saved = json.loads(json.dumps({**defaults, **saved}))
    wanted = json.loads(json.dumps(stored_settings(run_settings(config))))
    return [
        f"{name} {saved.get(name)}, not {value}" for name, value in wanted.items() if saved.get(name) != value
    ]


def job_start(config: TrainConfig, overwrite: bool) -> TrainConfig:
    """``config`` as its job starts it: resumed from its own run's checkpoint, started afresh over its own
    run when no update of it was checkpointed, or over a run with other settings only when ``overwrite``
    (``SettingError`` naming ``out`` otherwise: no finished update is lost without being asked)."""
    out = Path(config.out)
    if not holds_run(out):
        return config
    changed = differences(config)
    if changed:
        if overwrite:
            return config.replace(overwrite=True)
        shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
        raise SettingError("out", f"{out} holds a run with other settings ({shown}); "
                           "--overwrite retrains it, or choose another --out")  # fmt: skip
    state = checkpoint_state(out)
    return config.replace(resume=True) if state is not None else config.replace(overwrite=True)


def _run_job(
    config: TrainConfig, threads: int, progress, spawned: float, declined: bool, environ: dict[str, str]
) -> None:
    """One training run in a worker process (resumed if ``config.resume``), unless its checkpoint holds every
    update; then (``declined``) its evaluation with consultation declined. Puts the number of each
    finished update on the ``progress`` queue; writes ``TIMING`` (``spawned``: the parent's
    ``time.time()`` at its start). ``environ``: the parent's environment at the start (a forked worker
    would otherwise see the fork server's). Ctrl-C reaches the whole process group: the worker ignores
    it and stops on the SIGTERM the parent sends (one signal, so it checkpoints; it exits with one line,
    no traceback)."""
    import torch

    timing = {"start_s": time.time() - spawned}
    os.environ.clear()
    os.environ.update(environ)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    out = Path(config.out)
    start = checkpoint_state(out)["step"] if config.resume else 0
    progress.put(start)
    updates: list[int] = []
    started = time.perf_counter()
    try:
        if start < config.steps or not (out / FINAL_EVAL).exists():
            train(
                config, progress=False, on_step=lambda step, metrics: (updates.append(step), progress.put(1))
            )
    except TrainingStopped as stopped:
        sys.exit(128 + stopped.signum)  # the parent says it, once
    except (NonFiniteError, ExpertsFailing) as error:
        print(f"{out}: stopped: {error}", file=sys.stderr)
        sys.exit(1)
    timing["train_s"] = time.perf_counter() - started
    if not declined:
        atomic_write_text(out / TIMING, json.dumps(timing, indent=2))
        progress.put(config.steps - start - len(updates))
        return
    started = time.perf_counter()
    model, tokenizer = load_policy(out / CHECKPOINT / "model", config.device, config.dtype)
    declined = evaluate(model, tokenizer, config, consult="declined")
    timing["declined_eval_s"] = time.perf_counter() - started
    atomic_write_text(out / TIMING, json.dumps(timing, indent=2))
    (out / DECLINED_EVAL).write_text(json.dumps(declined, indent=2))
    progress.put(config.steps - start - len(updates))  # evaluation-only agents make no updates


def run_jobs(
    configs: Sequence[TrainConfig], workers: int, overwrite: bool = False, declined: bool = True
) -> None:
    """Run the unfinished configs, each in its own process, ``workers`` at a time (each evaluated declined
    too, with ``declined``); one progress bar over all updates. Each run's directory is checked first
    (``job_start``). A run that fails is reported once the others are done.

    SIGTERM or SIGINT stops the workers (each checkpoints its finished updates) and raises
    ``TrainingStopped``; finished runs are kept and the others resume on the next call.
    """
    todo = [job_start(config, overwrite) for config in configs if not finished(config, declined)]
    total = sum(config.steps for config in configs)
    reused = total - sum(config.steps for config in todo)
    threads = max(1, _cpu_count() // max(workers, 1))
    context = worker_context()
    progress = context.Queue()
    running: dict[str, Any] = {}  # run directory -> its process
    failed: list[str] = []
    bar = tqdm(total=total, initial=reused, desc="compare (updates, all runs)", unit="upd")
    with StopSignals() as stop, bar:
        while (todo or running) and stop.signum is None:
            while todo and len(running) < workers:
                config = todo.pop(0)
                running[config.out] = context.Process(
                    target=_run_job, args=(config, threads, progress, time.time(), declined, dict(os.environ))
                )
                running[config.out].start()
            time.sleep(0.2)
            for out, process in list(running.items()):
                if not process.is_alive():
                    del running[out]
                    failed += [out] if process.exitcode else []
            while not progress.empty():
                bar.update(progress.get())
        for process in running.values():
            process.terminate()  # SIGTERM: the run checkpoints its finished updates, then ends
        for process in running.values():
            process.join()
    if stop.signum is not None:
        raise TrainingStopped(
            stop.signum,
            f"stopped by {stop.name}; finished runs kept, the others checkpointed; the same command "
            "resumes them",
        )
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed (their errors are above): {', '.join(failed)}")


def worker_context() -> multiprocessing.context.BaseContext:
    """How runs get their process: a fork server where the platform has one. The server imports the
    workers' modules (torch, transformers, the agents: about 5 s) once, and each run is forked from it,
    a fresh process in the same state every time. Spawn elsewhere, paying the imports per run."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *sorted(set(built_in().values()))])
    return context


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def read_run(out: Path) -> dict[str, Any]:
    """Final evaluations (locked and declined), the evaluation curves, the training log's totals and
    its per-update series."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = json.loads((out / "eval.json").read_text())
    updates = [row for row in rows if "step_seconds" in row]
    evaluations = [row for row in rows if "eval/avg_at_k" in row]
    curves = {
        name: [(row["step"], row[name]) for row in evaluations]
        for name in final
        if name.startswith("eval/") and name.endswith("/avg_at_k")
    }
    series_names = sorted(
        {name for row in updates for name in row if name in SERIES or name.startswith("all_fail")}
    )
    return {
        "final": final,
        "declined": json.loads((out / DECLINED_EVAL).read_text()),
        "curves": curves,
        "series": {
            name: [(row["step"], row[name]) for row in updates if name in row] for name in series_names
        },
        "train_seconds": final.get("train_seconds", 0.0),
        "expert_calls": sum(row.get("expert_calls", 0.0) for row in updates),
        "expert_chars": sum(row.get("expert_chars", 0.0) for row in updates),
    }


SERIES = (
    "consult_rate",
    "queries_per_episode",
    "expert_calls",
    "acceptance_rate",
    "reward",
    "accuracy",
    "turns",
    "hinted_episodes",
    "hinted_accuracy",
    *HELP_METRICS,
)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def aggregate(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per method: mean and std over seeds of every held-out metric (locked, and declined beside it),
    cost, the all-fail shares at the start and end of training, and the mean curves."""
    methods = {}
    for name, by_seed in runs.items():
        seeds = sorted(by_seed)
        row: dict[str, Any] = {}
        for source, suffix in (("final", ""), ("declined", "_declined")):
            metrics = [by_seed[s][source] for s in seeds]
            for metric in metrics[0]:
                if metric.startswith("eval/"):
                    key = metric.removeprefix("eval/") + suffix
                    row[key], row[f"{key}_std"] = _mean_std([m[metric] for m in metrics])
        row["wall_s"], row["wall_s_std"] = _mean_std([by_seed[s]["train_seconds"] for s in seeds])
        row["expert_calls"] = float(np.mean([by_seed[s]["expert_calls"] for s in seeds]))
        row["expert_chars"] = float(np.mean([by_seed[s]["expert_chars"] for s in seeds]))
        row["per_seed_avg_at_k"] = [by_seed[s]["final"]["eval/avg_at_k"] for s in seeds]
        row["per_seed_curve"] = [by_seed[s]["curves"].get("eval/avg_at_k", []) for s in seeds]
        row["curves"] = {
            key: _mean_series([by_seed[s]["curves"][key] for s in seeds])
            for key in by_seed[seeds[0]]["curves"]
        }
        row["series"] = {
            key: _mean_series([by_seed[s]["series"].get(key, []) for s in seeds])
            for key in by_seed[seeds[0]]["series"]
        }
        row["all_fail"] = {
            key: {"start": _mean_of(values[:START_UPDATES]), "end": _mean_of(values[-END_UPDATES:])}
            for key, values in row["series"].items()
            if key.startswith("all_fail")
        }
        methods[name] = row
    return methods


def _mean_of(points: Sequence[tuple[int, float]]) -> float:
    return float(np.mean([value for _, value in points]))


def _mean_series(series: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float]]:
    steps = sorted(set.intersection(*(set(step for step, _ in s) for s in series))) if series else []
    return [(step, float(np.mean([dict(s)[step] for s in series]))) for step in steps]


def updates_to_reach(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first evaluated update at which ``curve`` is at least ``target``."""
    return next((step for step, value in curve if value >= target), None)


def run_compare(compare: CompareConfig) -> dict[str, Any]:
    """Train and evaluate every (method, seed); write compare JSON, markdown and plots; return the JSON.
    (``compare.tune`` is ``tuning.run_tuning``'s, which the CLI calls instead.)"""
    started = time.perf_counter()
    if Path(compare.out).exists() and not Path(compare.out).is_dir():
        raise SettingError("out", "is a file, not a directory", compare.out)
    policy, levels = starting_point(compare)
    methods = [method_by_name(name) for name in compare.methods]
    configs = {
        (m.name, seed): job_config(m, seed, compare, levels, policy)
        for m in methods
        for seed in compare.seeds
    }
    run_jobs(sorted(configs.values(), key=expected_length), compare.workers, compare.overwrite)
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for (name, seed), config in configs.items():
        runs.setdefault(name, {})[seed] = read_run(Path(config.out))
    results_by_method = aggregate(runs)
    base_curves = results_by_method.get("base", {}).get("curves", {})
    for row in results_by_method.values():  # every method starts from the base policy's score
        for key, curve in row["curves"].items():
            if base_curves.get(key) and (not curve or curve[0][0] > 0):
                row["curves"][key] = [(0, base_curves[key][-1][1]), *curve]
    if "grpo" in results_by_method:
        target = results_by_method["grpo"]["avg_at_k"]
        for row in results_by_method.values():
            row["updates_to_grpo_final"] = updates_to_reach(row["curves"].get("eval/avg_at_k", []), target)
    result = {
        "command": command_line(compare),
        "seeds": list(compare.seeds),
        "train_levels": list(levels),
        "eval_levels": [*levels, max(levels) + 1],
        "eval_split": compare.eval_split,
        "milestones": sorted({*range(BASE_STEPS, compare.steps + 1, BASE_STEPS), compare.steps}),
        "warm_start_accuracy": {
            split: {str(k): v for k, v in warm_start_accuracy(policy, split).items()}
            for split in ("train", "test")
        }
        if not compare.policy
        else {},
        "compare_config": dataclasses.asdict(compare),
        "train_config": {
            name: config.to_dict() for (name, seed), config in configs.items() if seed == compare.seeds[0]
        },
        "paper_avg_at_32": PAPER_AVG,
        "descriptions": {m.name: m.description for m in methods},
        "methods": results_by_method,
        "total_wall_s": time.perf_counter() - started,
    }
    write_report(result, compare.results_dir, compare.stem)
    return result


def command_line(compare: CompareConfig) -> str:
    """The ``eapo-gym compare`` invocation that reproduces ``compare``."""
    default = CompareConfig.for_preset(compare.preset, compare.quick)
    words = ["eapo-gym compare"] + (["--quick"] if compare.quick else [])
    words += [] if compare.preset == "tiny" else [f"--preset {compare.preset}"]
    for spec in dataclasses.fields(CompareConfig):
        value = getattr(compare, spec.name)
        if spec.name not in ("quick", "preset", "overwrite") and value != getattr(default, spec.name):
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            words.append(f"--{spec.name.replace('_', '-')} {text}")
    return " ".join(words)
