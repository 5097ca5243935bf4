"""``eapo-gym compare --tune``: the preregistered tuning budget, the same for every trained method.

Each trained method (``sft``, ``distill`` and every RL algorithm; not the ablations, which take their
algorithm's choice) gets ``len(LR_FACTORS)`` short runs: ``TUNE_STEPS`` updates, seed 0, evaluated
on *training-split* problems at the comparison's levels (never the test split). The learning rates are
the method's family default (``compare.RL_LR``, ``compare.SUPERVISED_LR``) times ``LR_FACTORS``; PPO
spends the same number of runs on ``PPO_GRID``, its learning rate and value coefficient, placed below
the shared RL rate at which it diverged untuned. The rule: the run with the highest locked avg@k
wins; an exact tie goes to the smaller learning rate. The winners are copied into ``compare.TUNED``
by hand, with the date, before any test-split result of them is looked at.

Writes ``tuning.json`` and ``tuning.md`` to the comparison's results directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..training.registry import agent_class
from .compare import (
    METHODS,
    RL_LR,
    SUPERVISED_LR,
    CompareConfig,
    Method,
    job_config,
    method_by_name,
    run_jobs,
    stage,
    starting_point,
)

TUNE_STEPS = 40  # a third of the comparison's 120 updates
LR_FACTORS = (0.1, 1 / 3, 1.0, 3.0)
PPO_GRID = ({"lr": 1e-5, "value_coef": 0.1}, {"lr": 1e-5, "value_coef": 0.5},
            {"lr": 3e-5, "value_coef": 0.1}, {"lr": 3e-5, "value_coef": 0.5})  # fmt: skip


def grid(algo: str) -> list[dict[str, float]]:
    """The settings tried for ``algo``: ``PPO_GRID``, or its family's learning rate times ``LR_FACTORS``."""
    if algo == "ppo":
        return [dict(point) for point in PPO_GRID]
    default = SUPERVISED_LR if agent_class(algo).supervised else RL_LR
    return [{"lr": float(f"{default * factor:.3g}")} for factor in LR_FACTORS]


def label(settings: dict[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in settings.items())


def tuned_methods(compare: CompareConfig) -> list[Method]:
    """The trained rows of ``compare.methods`` (ablations excluded)."""
    rows = {m.name for m in METHODS}
    return [method_by_name(n) for n in compare.methods if n in rows and stage(method_by_name(n).algo) > 0]


def run_tuning(compare: CompareConfig) -> dict[str, Any]:
    """Train every grid point of every trained method, apply the rule, write ``tuning.{json,md}``."""
    policy, levels = starting_point(compare)
    short = CompareConfig(**{**compare.__dict__, "tune": False, "steps": TUNE_STEPS, "eval_every": TUNE_STEPS,
                             "eval_split": "train", "seeds": (0,), "lr": 0.0})  # fmt: skip
    runs = {
        (method.name, label(settings)): job_config(
            Method(f"tune/{method.name}/{label(settings)}", method.algo, {**method.overrides, **settings}),
            0, short, levels, policy,
        )
        for method in tuned_methods(compare)
        for settings in grid(method.algo)
    }  # fmt: skip
    run_jobs(list(runs.values()), compare.workers, compare.overwrite, declined=False)
    scores: dict[str, dict[str, float]] = {}
    for (name, point), config in runs.items():
        final = json.loads((Path(config.out) / "eval.json").read_text())
        scores.setdefault(name, {})[point] = final["eval/avg_at_k"]
    chosen = {name: _winner(name, points) for name, points in scores.items()}
    result = {
        "command": "eapo-gym compare --tune"
        + (
            f" --methods {','.join(compare.methods)}" if compare.methods != CompareConfig().methods else ""
        ),  # fmt: skip
        "steps": TUNE_STEPS,
        "train_levels": list(levels),
        "eval": f"training split, {compare.eval_problems} problems per level, k = {compare.eval_k}, locked",
        "scores": scores,
        "chosen": chosen,
    }
    directory = compare.results_dir
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tuning.json").write_text(json.dumps(result, indent=2))
    (directory / "tuning.md").write_text(markdown(result))
    return result


def _winner(name: str, points: dict[str, float]) -> dict[str, float]:
    """The rule: the highest avg@k; an exact tie goes to the smaller learning rate."""
    algo = method_by_name(name).algo
    settings = {label(s): s for s in grid(algo)}
    best = max(points, key=lambda point: (points[point], -settings[point]["lr"]))
    return settings[best]


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Tuning",
        "",
        f"`{result['command']}`: {result['steps']} updates, seed 0, levels "
        f"{','.join(map(str, result['train_levels']))}; evaluated on the {result['eval']}. "
        "avg@k (%) of every run; the chosen one in bold.",
        "",
        "| method | runs (settings: avg@k) | chosen |",
        "|---|---|---|",
    ]
    for name, points in result["scores"].items():
        chosen = label(result["chosen"][name])
        cells = [
            f"**{p}: {100 * v:.1f}**" if p == chosen else f"{p}: {100 * v:.1f}" for p, v in points.items()
        ]
        lines.append(f"| {name} | {'; '.join(cells)} | {chosen} |")
    return "\n".join(lines) + "\n"
