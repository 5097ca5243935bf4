"""The comparison's outputs: a JSON of every number, a markdown table beside the paper's, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGET_LEARNING = 0.05  # GRPO's held-out gain over base that shows the testbed learns at all
TARGET_GAIN = 0.05  # EAPO over GRPO (the paper: +4.9 points)


def _points(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.1f}"


def spread_known(result: dict[str, Any]) -> bool:
    """Whether there are seeds enough (2 or more) to state a spread; one seed's std of 0 says nothing."""
    return len(result["seeds"]) >= 2


def markdown_table(result: dict[str, Any]) -> str:
    """Ours (avg@k locked, mean ± std over seeds, declined beside it) beside the paper's avg@32 gains.
    With one seed the std column says so instead of showing 0."""
    methods, paper = result["methods"], result["paper_avg_at_32"]
    base = methods.get("base", {}).get("avg_at_k")
    k = result["compare_config"]["eval_k"]
    levels = result["eval_levels"]
    per_level = " / ".join(f"d{level}" for level in levels)
    lines = [
        f"| method | avg@{k} locked (%) | ± std | avg@{k} declined (%) | gain over base | paper gain | "
        f"pass@{k} (%) | {per_level} (%) | consult rate, declined | wall s | expert calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in methods.items():
        gain = None if base is None else row["avg_at_k"] - base
        paper_gain = f"{paper[name] - paper['base']:+.2f}" if name in paper else ""
        by_level = " / ".join(f"{100 * row.get(f'd{level}/avg_at_k', float('nan')):.1f}" for level in levels)
        std = f"{100 * row['avg_at_k_std']:.1f}" if spread_known(result) else "n/a (1 seed)"
        lines.append(
            f"| {name} | {100 * row['avg_at_k']:.1f} | {std} | "
            f"{100 * row.get('avg_at_k_declined', float('nan')):.1f} | {_points(gain)} | {paper_gain} | "
            f"{100 * row['pass_at_k']:.1f} | {by_level} | "
            f"{100 * row.get('consult_rate_declined', 0.0):.0f}% | {row['wall_s']:.0f} | "
            f"{row['expert_calls']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def cost_per_point_table(result: dict[str, Any]) -> str:
    """What each point of held-out accuracy gained over base cost: run seconds (GPU seconds on a GPU
    run), accepted expert calls and expert reply characters (the policy's character tokenizer reads
    one token per character). A method that gained nothing has no cost per point."""
    methods = result["methods"]
    if "base" not in methods:
        return ""
    base = methods["base"]["avg_at_k"]
    lines = [
        "| method | gain (points) | run s / point | expert calls / point | expert chars / point |",
        "|---|---|---|---|---|",
    ]
    for name, row in methods.items():
        if name == "base":
            continue
        gain = 100 * (row["avg_at_k"] - base)
        costs = (row["wall_s"], row["expert_calls"], row["expert_chars"])
        cells = [f"{cost / gain:.3g}" if gain > 0 else "no gain" for cost in costs]
        lines.append(f"| {name} | {gain:+.1f} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def paired_table(result: dict[str, Any], references: tuple[str, ...] = ("grpo", "eapo")) -> str:
    """Each method's final avg@k (locked) minus each reference's, paired by seed: mean ± std over the
    seeds of the per-seed differences (points). Empty with fewer than two seeds or no reference."""
    methods = result["methods"]
    references = tuple(name for name in references if name in methods)
    if not references or not spread_known(result):
        return ""
    lines = [
        "| method | " + " | ".join(f"− {name}" for name in references) + " |",
        "|---|" + "---|" * len(references),
    ]
    for name, row in methods.items():
        cells = [
            ""
            if name == reference
            else _mean_std_cell(
                [
                    a - b
                    for a, b in zip(
                        row["per_seed_avg_at_k"], methods[reference]["per_seed_avg_at_k"], strict=True
                    )
                ],
                signed=True,
            )  # fmt: skip
            for reference in references
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def all_fail_table(result: dict[str, Any]) -> str:
    """Share of training groups in which no episode is correct, per level, first and last updates."""
    rows = {name: row["all_fail"] for name, row in result["methods"].items() if row.get("all_fail")}
    if not rows:
        return ""
    keys = sorted({key for shares in rows.values() for key in shares})
    header = " | ".join("all levels" if key == "all_fail_groups" else key.split("/")[-1] for key in keys)
    lines = [f"| method | {header} |", "|---|" + "---|" * len(keys)]
    for name, shares in rows.items():
        cells = [
            f"{100 * shares[key]['start']:.0f}% → {100 * shares[key]['end']:.0f}%" if key in shares else ""
            for key in keys
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _at(curve: list, step: int) -> float | None:
    """``curve``'s value at ``step``; an evaluation-only method's single point stands for every step."""
    values = dict(map(tuple, curve))
    return values.get(step, next(iter(values.values())) if len(values) == 1 else None)


def _mean_std_cell(values: list[float], signed: bool = False) -> str:
    mean, std = 100 * float(np.mean(values)), 100 * float(np.std(values))
    return f"{mean:+.1f} ± {std:.1f}" if signed else f"{mean:.1f} ± {std:.1f}"


def milestone_table(result: dict[str, Any]) -> str:
    """Held-out avg@k (locked) at each of ``result["milestones"]`` (multiples of the preregistered
    budget), mean ± std over seeds, and each method's difference from GRPO paired by seed. Empty for
    a run with one milestone (its final numbers are the main table)."""
    milestones, methods = result.get("milestones", []), result["methods"]
    if len(milestones) < 2:
        return ""
    at = {
        name: [[_at(curve, step) for curve in row["per_seed_curve"]] for step in milestones]
        for name, row in methods.items()
        if row.get("per_seed_curve")
    }
    at = {name: columns for name, columns in at.items() if all(None not in c for c in columns)}
    lines = [
        "| method | " + " | ".join(f"update {step}" for step in milestones) + " |",
        "|---|" + "---|" * len(milestones),
    ]
    lines += [f"| {name} | {' | '.join(map(_mean_std_cell, columns))} |" for name, columns in at.items()]
    pairs = [(name, "grpo") for name in at if name not in ("grpo", "base")] + [("grpo", "base")]
    for name, reference in pairs:
        if name in at and reference in at:
            paired = [
                _mean_std_cell([a - b for a, b in zip(mine, theirs, strict=True)], signed=True)
                for mine, theirs in zip(at[name], at[reference], strict=True)
            ]
            lines.append(f"| {name} − {reference} | {' | '.join(paired)} |")
    return "\n".join(lines) + "\n"


HELP_WINDOWS = (("ρ = 1", 1.0, 1.01), ("1 > ρ ≥ 0.1", 0.1, 1.0), ("ρ < 0.1", 0.0, 0.1))
HELP_METRICS = (  # EAPO's training log, from help_shares
    "helped_episodes",
    "declined_episodes",
    "helped_accuracy",
    "declined_accuracy",
    "unasked_accuracy",
    "rescued_groups",
)


def help_table(result: dict[str, Any]) -> str:
    """Where the help goes, per EAPO method and window of the acceptance rate ρ (mean over the window's
    updates of the seeds' mean): the shares of helped and declined episodes (``help_shares``), the
    accuracy of helped, declined and unasked episodes, rescued groups, and all-fail groups."""
    lines = [
        "| method | ρ | updates | helped | declined | accuracy: helped | declined | never asked "
        "| rescued groups | all-fail groups |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["methods"].items():
        series = row.get("series", {})
        if not series.get("helped_episodes"):
            continue
        rho = dict(map(tuple, series["acceptance_rate"]))
        for label, low, high in HELP_WINDOWS:
            steps = {step for step, value in rho.items() if low <= value < high}
            if not steps:
                continue
            cells = []
            for key in (*HELP_METRICS, "all_fail_groups"):
                values = [value for step, value in series.get(key, []) if step in steps]
                cells.append(f"{100 * float(np.mean(values)):.0f}%" if values else "")
            lines.append(f"| {name} | {label} | {min(steps)}–{max(steps)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


GUIDANCE = {"helped_episodes": "helped_accuracy", "hinted_episodes": "hinted_accuracy"}  # EAPO's; hints'


def guidance_table(result: dict[str, Any]) -> str:
    """Every guided method side by side, by thirds of the run (mean over the third's updates of the seeds'
    mean): the share of its training episodes that were guided (an accepted expert reply, or a hint in
    the prompt), their accuracy where logged, the training accuracy of all its rollouts, and all-fail
    groups. GRPO's row, unguided, is the reference."""
    steps = result["compare_config"]["steps"]
    thirds = [(1 + k * steps // 3, (k + 1) * steps // 3) for k in range(3)]
    lines = [
        "| method | updates | guided episodes | accuracy: guided | all episodes | all-fail groups |",
        "|---|---|---|---|---|---|",
    ]
    any_guided = False
    for name, row in result["methods"].items():
        series = row.get("series", {})
        guided = next((key for key in GUIDANCE if any(v > 0 for _, v in series.get(key, []))), None)
        if guided is None and name != "grpo":
            continue
        any_guided |= guided is not None
        keys = (guided, GUIDANCE.get(guided), "accuracy", "all_fail_groups")
        for low, high in thirds:
            cells = []
            for key in keys:
                values = [value for step, value in series.get(key, []) if low <= step <= high] if key else []
                cells.append(f"{100 * float(np.mean(values)):.0f}%" if values else "")
            lines.append(f"| {name} | {low}–{high} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n" if any_guided else ""


def verdicts(result: dict[str, Any]) -> list[str]:
    """The issue's targets, each stated as met or not from the measured numbers."""
    methods = result["methods"]
    lines = []
    if "grpo" in methods and "base" in methods:
        learning = methods["grpo"]["avg_at_k"] - methods["base"]["avg_at_k"]
        lines.append(
            f"- The testbed learns: GRPO - base = {100 * learning:+.1f} points, consultation locked "
            f"(target +{100 * TARGET_LEARNING:.0f}): {'met' if learning >= TARGET_LEARNING else 'not met'}."
        )
    if "eapo" not in methods or "grpo" not in methods:
        return lines
    eapo, grpo = methods["eapo"], methods["grpo"]
    gap = eapo["avg_at_k"] - grpo["avg_at_k"]
    head = f"- EAPO - GRPO = {100 * gap:+.1f} points (target +{100 * TARGET_GAIN:.0f}, paper +4.9): "
    if spread_known(result):
        separated = abs(gap) > eapo["avg_at_k_std"] + grpo["avg_at_k_std"]  # either side above the other
        lines.append(
            f"{head}{'met' if gap >= TARGET_GAIN and separated else 'not met'}; ±1 std ranges "
            f"{'do not overlap' if separated else 'overlap'}."
        )
    else:
        lines.append(f"{head}not established: one seed shows no spread (2 or more seeds are needed).")
    for other in ("workflow", "distill", "base"):
        if other in methods:
            above = eapo["avg_at_k"] > methods[other]["avg_at_k"]
            lines.append(f"- EAPO {'above' if above else 'not above'} {other}.")
    reached = ", ".join(
        f"{name} {row.get('updates_to_grpo_final')}" for name, row in methods.items() if name != "base"
    )
    lines.append(
        f"- Updates to reach GRPO's final accuracy: {reached} (None: never reached at an evaluation point)."
    )
    return lines


def _plot(path: Path, title: str, ylabel: str, draw) -> None:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    draw(axis)
    axis.set(xlabel="policy update", ylabel=ylabel, title=title)
    axis.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below: no curve hidden
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def ablation_of(name: str, names: list[str]) -> str | None:
    """The method ``name`` is an ablation of (``eapo_k1`` of ``eapo``), or None for a method."""
    return next((other for other in names if name.startswith(f"{other}_")), None)


def method_styles(names: list[str]) -> dict[str, dict[str, Any]]:
    """A colour and a marker of its own for each name: tab10's hues, then Dark2's (18 in all), with a
    marker of its own too."""
    colours = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
    markers = "os^Dv<>pXh*P"
    return {
        name: {"color": colours[i % len(colours)], "marker": markers[i % len(markers)]}
        for i, name in enumerate(names)
    }


def plot_accuracy(result: dict[str, Any], path: Path) -> None:
    """Held-out accuracy along the run, mean over seeds with a +-1 std band (where the per-seed curves
    are recorded); the methods on the left, the ablations on the right (with the method they vary in
    black), each name of a panel its own colour and marker; evaluation-only rows as level lines with
    their band."""
    k = result["compare_config"]["eval_k"]
    names = list(result["methods"])
    panels = {
        "methods": [n for n in names if ablation_of(n, names) is None],
        "ablations": [n for n in names if ablation_of(n, names) is not None],
    }
    panels = {title: members for title, members in panels.items() if members}
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.8), sharey=True, squeeze=False)
    for axis, (title, members) in zip(axes[0], panels.items(), strict=True):
        styles = method_styles(members)
        for name in members:
            _draw_accuracy(axis, name, result["methods"][name], styles[name])
        if title == "ablations":  # the method they vary, for reference
            for parent in dict.fromkeys(ablation_of(n, names) for n in members):
                _draw_accuracy(axis, parent, result["methods"][parent], {"color": "black", "marker": "."})
        axis.set(xlabel="policy update", title=f"Held-out accuracy, consultation locked: {title}")
        axis.legend(fontsize=7, ncol=2)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"avg@{k} (%), mean over seeds (band: ± 1 std, where recorded)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _draw_accuracy(axis, name: str, row: dict[str, Any], style: dict[str, Any]) -> None:
    curve = row["curves"].get("eval/avg_at_k", [])
    if len(curve) <= 1:  # evaluation-only baselines: a level line and its band
        mean, std = 100 * row["avg_at_k"], 100 * row.get("avg_at_k_std", 0.0)
        axis.axhline(mean, color=style["color"], linestyle="--", linewidth=1.2, label=name)
        axis.axhspan(mean - std, mean + std, color=style["color"], alpha=0.12)
        return
    steps, values = zip(*curve, strict=True)
    axis.plot(steps, [100 * v for v in values], markersize=3.5, linewidth=1.3, label=name, **style)
    per_seed = [dict(c) for c in row.get("per_seed_curve", []) if c]
    if len(per_seed) > 1:
        shared = [s for s in steps if all(s in c for c in per_seed)]
        spread = [100 * float(np.std([c[s] for c in per_seed])) for s in shared]
        centre = [100 * dict(curve)[s] for s in shared]
        low = [c - d for c, d in zip(centre, spread, strict=True)]
        high = [c + d for c, d in zip(centre, spread, strict=True)]
        axis.fill_between(shared, low, high, color=style["color"], alpha=0.15, linewidth=0)


def plot_series(result: dict[str, Any], names: list[str], keys: list[str], title: str, path: Path) -> None:
    def draw(axis) -> None:  # one line style per method, so curves that coincide stay visible
        for name, style in zip(names, ("-", "--", ":", "-."), strict=False):
            row = result["methods"].get(name, {})
            for key in keys:
                points = row.get("series", {}).get(key) or row.get("curves", {}).get(key, [])
                if points:
                    steps, values = zip(*points, strict=True)
                    axis.plot(steps, values, linestyle=style, label=f"{name}: {key}")

    _plot(path, title, "value", draw)


def write_report(result: dict[str, Any], directory: Path, stem: str) -> None:
    """``{stem}.json``, ``{stem}.md`` and four PNG plots under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(result, indent=2))
    names = [name for name in ("grpo", "eapo") if name in result["methods"]]
    levels = result["eval_levels"]
    plot_accuracy(result, directory / f"{stem}_accuracy.png")
    plot_series(
        result,
        names,
        [f"eval/d{level}/avg_at_k" for level in levels],
        "Held-out accuracy per level, consultation locked",
        directory / f"{stem}_levels.png",
    )
    plot_series(
        result,
        [name for name in result["methods"] if name.startswith("eapo")][:1],
        ["consult_rate", "queries_per_episode", "acceptance_rate", "turns"],
        "EAPO in training: consult rate, queries per episode, acceptance rho, turns",
        directory / f"{stem}_consult.png",
    )
    sparsity = sorted(
        {key for name in names for key in result["methods"][name]["series"] if "all_fail" in key}
    )
    plot_series(
        result, names, sparsity, "Training groups with no correct episode", directory / f"{stem}_sparsity.png"
    )
    milestones, helped, paired = milestone_table(result), help_table(result), paired_table(result)
    guidance = guidance_table(result)
    text = [
        f"# {stem}\n",
        f"Command: `{result['command']}`\n",
        f"Trained on levels {result['train_levels']} (picked from the warm start's training-split "
        f"accuracy {result['warm_start_accuracy'].get('train', {})}); evaluated on the "
        f"{result['eval_split']} split at levels {result['eval_levels']}, consultation locked (declined "
        f"beside it; workflow: experts answer). Seeds {result['seeds']}; this invocation took "
        f"{result['total_wall_s'] / 60:.1f} min (finished runs are reused); wall s is per run, with "
        f"{result['compare_config']['workers']} runs in parallel.\n",
        markdown_table(result),
        *(
            ["\nFinal avg@k locked, differences paired by seed (points, mean ± std over seeds):\n", paired]
            if paired
            else []
        ),  # fmt: skip
        *[line + "\n" for line in verdicts(result)],
        "\nCost per point gained over base (per run, mean over seeds):\n",
        cost_per_point_table(result),
        *(
            ["\nHeld-out avg@k locked (%) along the run, differences paired by seed (points):\n", milestones]
            if milestones
            else []
        ),
        "\nShare of training groups with no correct episode, first → last updates:\n",
        all_fail_table(result),
        *(
            [
                "\nWhere the help goes in training, by acceptance rate ρ (helped: an accepted reply; "
                "declined: asked, never answered; rescued: groups whose every correct episode was helped):\n",
                helped,
            ]
            if helped
            else []
        ),
        *(
            [
                "\nGuided training episodes by method (helped: an accepted expert reply; hinted: a solution "
                "prefix in the prompt), by thirds of the run; GRPO unguided for reference:\n",
                guidance,
            ]
            if guidance
            else []
        ),
        f"\n![accuracy]({stem}_accuracy.png)\n",
    ]
    (directory / f"{stem}.md").write_text("\n".join(text))
