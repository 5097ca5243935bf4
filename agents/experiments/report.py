"""The comparison's outputs: a JSON of every number, a markdown table beside the paper's, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _points(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.1f}"


def markdown_table(result: dict[str, Any]) -> str:
    """Ours (avg@k, as a gain over base, mean ± std over seeds) beside the paper's avg@32 gains."""
    methods, paper = result["methods"], result["paper_avg_at_32"]
    base = methods.get("base", {}).get("avg_at_k")
    k = result["compare_config"]["eval_k"]
    level = result["train_difficulty"]
    lines = [
        f"| method | avg@{k} (%) | ± std over seeds | gain over base | paper avg@32 | paper gain | "
        f"pass@{k} (%) | var over samples | d{level} / d{level + 1} (%) | wall s | expert calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in methods.items():
        gain = None if base is None else row["avg_at_k"] - base
        paper_gain = f"{paper[name] - paper['base']:+.2f}" if name in paper else ""
        lines.append(
            f"| {name} | {100 * row['avg_at_k']:.1f} | {100 * row['avg_at_k_std']:.1f} | {_points(gain)} | "
            f"{paper.get(name, '')} | {paper_gain} | {100 * row['pass_at_k']:.1f} | "
            f"{row['var_over_samples']:.4f} | {100 * row['avg_at_k_train_level']:.1f} / "
            f"{100 * row['avg_at_k_harder_level']:.1f} | {row['wall_s']:.0f} | {row['expert_calls']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def verdicts(result: dict[str, Any]) -> list[str]:
    """The issue's targets, each stated as met or not from the measured numbers."""
    methods = result["methods"]
    if "eapo" not in methods or "grpo" not in methods:
        return []
    eapo, grpo = methods["eapo"], methods["grpo"]
    gap = eapo["avg_at_k"] - grpo["avg_at_k"]
    separated = abs(gap) > eapo["avg_at_k_std"] + grpo["avg_at_k_std"]  # either side above the other
    lines = [
        f"- EAPO - GRPO = {100 * gap:+.1f} points (target +5, paper +4.9): "
        f"{'met' if gap >= 0.05 else 'not met'}; ±1 std ranges "
        f"{'do not overlap' if separated else 'overlap'}.",
    ]
    for other in ("workflow", "distill", "base"):
        if other in methods:
            above = eapo["avg_at_k"] > methods[other]["avg_at_k"]
            lines.append(f"- EAPO {'above' if above else 'not above'} {other}.")
    reached, grpo_steps = eapo.get("updates_to_grpo_final"), grpo.get("updates_to_grpo_final")
    lines.append(
        f"- Updates to reach GRPO's final accuracy: EAPO {reached}, GRPO {grpo_steps} "
        "(None: never reached at an evaluation point)."
    )
    return lines


def plot_curves(result: dict[str, Any], path: Path) -> None:
    k = result["compare_config"]["eval_k"]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, row in result["methods"].items():
        if len(row["curve"]) > 1:
            steps, values = zip(*row["curve"], strict=True)
            axis.plot(steps, [100 * v for v in values], marker="o", label=name)
        else:  # evaluation-only baselines: a level line
            axis.axhline(100 * row["avg_at_k"], linestyle="--", linewidth=1, label=name)
    axis.set(xlabel="policy update", ylabel=f"held-out avg@{k} (%)", title="Held-out accuracy, experts off")
    axis.legend(fontsize=8, ncol=2)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_series(result: dict[str, Any], names: list[str], keys: list[str], title: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name in names:
        for key in keys:
            series = result["methods"].get(name, {}).get("series", {}).get(key, [])
            if series:
                steps, values = zip(*series, strict=True)
                axis.plot(steps, values, label=f"{name}: {key}")
    axis.set(xlabel="policy update", ylabel="fraction", title=title, ylim=(-0.02, 1.02))
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(result: dict[str, Any], directory: Path, stem: str) -> None:
    """``{stem}.json``, ``{stem}.md`` and three PNG plots under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(result, indent=2))
    plot_curves(result, directory / f"{stem}_accuracy.png")
    eapo_runs = [name for name in result["methods"] if name.startswith("eapo")]
    plot_series(
        result,
        eapo_runs[:1],
        ["consult_rate", "acceptance_rate"],
        "EAPO: consult and acceptance rates",
        directory / f"{stem}_consult.png",
    )
    plot_series(
        result,
        [n for n in ("grpo", "eapo") if n in result["methods"]],
        ["all_equal_groups"],
        "Reward sparsity: share of groups with all-equal rewards",
        directory / f"{stem}_sparsity.png",
    )
    text = [
        f"# {stem}\n",
        f"Command: `{result['command']}`\n",
        f"Train difficulty {result['train_difficulty']} (warm start avg@k per level: "
        f"{result['warm_start_accuracy']}); evaluation on the test split at levels "
        f"{result['eval_difficulties']}, experts off (workflow: experts on). Seeds {result['seeds']}; "
        f"this invocation took {result['total_wall_s'] / 60:.1f} min (finished runs are reused); "
        f"wall s is per run, with {result['compare_config']['workers']} runs in parallel.\n",
        markdown_table(result),
        *[line + "\n" for line in verdicts(result)],
        f"\n![accuracy]({stem}_accuracy.png)\n",
    ]
    (directory / f"{stem}.md").write_text("\n".join(text))
