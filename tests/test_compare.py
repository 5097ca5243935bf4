"""``eapo-gym compare``: the jobs, the aggregation over seeds, and the written table, JSON and plots."""

from __future__ import annotations

import json

import pytest

from benchmarks import compare_profile
from eapo_agents.algorithms.eapo import help_shares
from eapo_agents.algorithms.grpo import all_fail_shares
from eapo_agents.experiments.compare import (
    ABLATIONS,
    METHODS,
    PAPER_AVG,
    CompareConfig,
    aggregate,
    command_line,
    job_config,
    method_by_name,
    pick_train_levels,
    run_compare,
    stage,
    updates_to_reach,
)
from eapo_agents.experiments.report import (
    ablation_of,
    guidance_table,
    help_table,
    markdown_table,
    method_styles,
    milestone_table,
    paired_table,
    verdicts,
)
from eapo_agents.rollout.episode import Episode
from eapo_agents.training.registry import built_in


def test_training_levels_are_a_learnable_level_and_the_next_one():
    assert pick_train_levels({1: 0.6, 2: 0.19, 3: 0.004, 4: 0.0}, 0.5) == (2, 3)
    assert pick_train_levels({1: 0.3, 2: 0.0}, 0.5) == (1, 2)
    assert pick_train_levels({1: 0.9, 2: 0.7}, 0.5) == (3, 4)


def test_every_method_and_ablation_of_the_issue_with_its_overrides(tmp_path):
    names = {m.name for m in METHODS + ABLATIONS}
    assert {"base", "sft", "workflow", "distill", "grpo", "ppo", "eapo"} <= names
    ablations = {"eapo_fixed_turns", "eapo_successive", "eapo_symbolic", "eapo_cost", "eapo_fail_only",
                 "eapo_k1", "eapo_noisy", "eapo_model_expert", "eapo_constant"}  # fmt: skip
    assert ablations <= names
    compare = CompareConfig(steps=7, out=str(tmp_path), expert_model="/models/expert")
    k1 = job_config(method_by_name("eapo_k1"), 2, compare, (2, 3), tmp_path)
    assert (k1.algo, k1.max_queries, k1.seed, k1.steps) == ("eapo", 1, 2, 7)
    assert (k1.train_difficulties, k1.eval_difficulties) == ((2, 3), (2, 3, 4))
    assert k1.options.acceptance_scale == 10.0  # EAPO's one default, the validation runs' choice (README)

    def options(name: str):
        return job_config(method_by_name(name), 0, compare, (2, 3), tmp_path)

    assert options("workflow").options.queries == "policy"  # the paper's: the policy asks its own way
    assert options("workflow_scripted").options.queries == "scripted"
    assert options("eapo_model_expert").experts == "model:/models/expert"
    assert options("eapo_noisy").expert_noise == 0.3
    assert options("eapo_constant").options.acceptance == "constant:1"
    assert options("eapo_fixed_turns").options.turn_schedule == "constant:1"
    assert options("eapo_fail_only").options.help_only_failing
    assert options("eapo_cost").consult_cost == 0.05
    assert options("eapo_successive").experts == "reference-successive"
    assert options("eapo").options.turn_schedule == "linear" and options("eapo").experts == "reference"
    with pytest.raises(ValueError, match="unknown method"):
        method_by_name("nope")


def test_the_table_rows_are_the_registry_in_stage_order():
    """Every built-in algorithm is a row, described by its docstring; evaluation-only rows first, RL last."""
    assert [m.name for m in METHODS] == sorted(built_in(), key=lambda name: (stage(name), name))
    assert [m.name for m in METHODS][:2] == ["base", "workflow"] and METHODS[-1].name == "ppo"
    assert method_by_name("grpo").description.startswith("Self-exploratory RL")
    assert all(m.description and "\n" not in m.description for m in METHODS)


def test_command_line_reproduces_the_config():
    assert command_line(CompareConfig()) == "eapo-gym compare"
    assert command_line(CompareConfig.quick_preset()) == "eapo-gym compare --quick"
    assert command_line(CompareConfig(seeds=(0, 1), steps=5)) == "eapo-gym compare --seeds 0,1 --steps 5"
    assert CompareConfig(eval_split="train").stem == "compare_validation"
    assert CompareConfig(steps=480).stem == "compare_steps480"  # never overwrites the 120-update results


def _episode(correct: bool, level: int, accepted: int = 0, consults: int = 0) -> Episode:
    info = {
        "correct": correct,
        "difficulty": level,
        "accepted": accepted,
        "consults": max(consults, accepted),
    }
    return Episode("p", [1], info=info)


def test_all_fail_shares_per_level():
    groups = [
        [_episode(False, 2), _episode(True, 2)],
        [_episode(False, 2), _episode(False, 2)],
        [_episode(False, 3), _episode(False, 3)],
    ]
    assert all_fail_shares(groups) == {
        "all_fail_groups": pytest.approx(2 / 3),
        "all_fail_groups/d2": 0.5,
        "all_fail_groups/d3": 1.0,
    }


def test_help_shares_say_where_the_replies_went():
    groups = [
        [_episode(True, 2, accepted=1), _episode(False, 2)],  # rescued: its only correct episode was helped
        [_episode(True, 2, accepted=2), _episode(True, 2, consults=1)],  # not rescued: one solved unhelped
        [_episode(False, 3, accepted=1, consults=3), _episode(False, 3, consults=2)],  # helped, all fail
    ]
    assert help_shares(groups) == {
        "helped_episodes": 0.5,
        "declined_episodes": pytest.approx(1 / 3),
        "helped_accuracy": pytest.approx(2 / 3),
        "declined_accuracy": 0.5,
        "unasked_accuracy": 0.0,
        "rescued_groups": pytest.approx(1 / 3),
    }
    alone = [[_episode(True, 2), _episode(False, 2)]]
    assert help_shares(alone) == {
        "helped_episodes": 0.0,
        "declined_episodes": 0.0,
        "unasked_accuracy": 0.5,
        "rescued_groups": 0.0,
    }


def _run(avg: float, declined: float, curve: list, calls: float = 0.0) -> dict:
    final = {"eval/avg_at_k": avg, "eval/pass_at_k": min(1.0, 2 * avg), "eval/d2/avg_at_k": avg + 0.05,
             "eval/d3/avg_at_k": avg - 0.05, "eval/consult_rate": 0.0}  # fmt: skip
    series = {"consult_rate": [(1, 0.5), (2, 0.25)], "all_fail_groups/d3": [(1, 1.0), (2, 0.5)]}
    declined_final = {**final, "eval/avg_at_k": declined, "eval/consult_rate": 0.3}
    return {"final": final, "declined": declined_final, "curves": {"eval/avg_at_k": curve}, "series": series,
            "train_seconds": 10.0, "expert_calls": calls, "expert_chars": 10 * calls}  # fmt: skip


def test_aggregate_means_and_stds_over_seeds_in_both_evaluation_modes():
    runs = {
        "grpo": {0: _run(0.2, 0.1, [(10, 0.1), (20, 0.2)]), 1: _run(0.4, 0.3, [(10, 0.3), (20, 0.4)])},
        "eapo": {
            0: _run(0.5, 0.4, [(10, 0.4), (20, 0.5)], 30),
            1: _run(0.5, 0.2, [(10, 0.2), (20, 0.5)], 10),
        },
    }
    rows = aggregate(runs)
    assert rows["grpo"]["avg_at_k"] == pytest.approx(0.3) and rows["grpo"]["avg_at_k_std"] == pytest.approx(
        0.1
    )
    assert rows["eapo"]["avg_at_k_declined"] == pytest.approx(0.3)
    assert rows["eapo"]["consult_rate_declined"] == pytest.approx(0.3) and rows["eapo"]["consult_rate"] == 0.0
    assert rows["eapo"]["avg_at_k_std"] == 0.0 and rows["eapo"]["expert_calls"] == 20.0
    assert rows["eapo"]["d2/avg_at_k"] == pytest.approx(0.55)
    assert rows["eapo"]["curves"]["eval/avg_at_k"] == [(10, pytest.approx(0.3)), (20, pytest.approx(0.5))]
    assert rows["grpo"]["all_fail"]["all_fail_groups/d3"] == {"start": 0.75, "end": 0.75}
    assert updates_to_reach(rows["eapo"]["curves"]["eval/avg_at_k"], rows["grpo"]["avg_at_k"]) == 10
    assert updates_to_reach(rows["grpo"]["curves"]["eval/avg_at_k"], 0.9) is None


def test_compare_end_to_end_writes_json_table_and_plots(tiny_model_dir, tmp_path):
    compare = CompareConfig(
        seeds=(0, 1), methods=("base", "grpo", "eapo"), steps=2, eval_every=1, eval_k=2, eval_problems=2,
        train_levels=(1, 2), workers=1, policy=str(tiny_model_dir), out=str(tmp_path / "runs"),
        results=str(tmp_path / "results"),
    )  # fmt: skip
    result = run_compare(compare)
    saved = json.loads((tmp_path / "results" / "compare_steps2.json").read_text())
    assert saved["command"].startswith("eapo-gym compare") and saved["seeds"] == [0, 1]
    assert saved["train_levels"] == [1, 2] and saved["eval_levels"] == [1, 2, 3]
    for name in ("base", "grpo", "eapo"):
        row = saved["methods"][name]
        assert len(row["per_seed_avg_at_k"]) == 2 and "avg_at_k_declined" in row and "d3/avg_at_k" in row
    assert saved["methods"]["grpo"]["expert_calls"] == 0.0 and saved["methods"]["eapo"]["expert_calls"] > 0
    assert saved["methods"]["grpo"]["series"]["consult_rate"] == [[1, 0.0], [2, 0.0]]  # GRPO cannot consult
    assert [step for step, _ in saved["methods"]["grpo"]["curves"]["eval/avg_at_k"]] == [0, 1, 2]
    assert saved["methods"]["eapo"]["series"]["acceptance_rate"][0] == [1, 1.0]
    assert saved["milestones"] == [2] and saved["methods"]["eapo"]["series"]["helped_episodes"][0][1] > 0
    assert set(saved["methods"]["grpo"]["all_fail"]) >= {"all_fail_groups/d1", "all_fail_groups/d2"}
    for plot in ("accuracy", "levels", "consult", "sparsity"):
        assert (tmp_path / "results" / f"compare_steps2_{plot}.png").stat().st_size > 1000
    table = (tmp_path / "results" / "compare_steps2.md").read_text()
    assert table.count("\n| ") >= 4 and "| eapo |" in table
    assert f"| {PAPER_AVG['eapo'] - PAPER_AVG['base']:+.2f} |" in table  # the paper's gain beside ours
    assert markdown_table(result) in table and help_table(result) in table and "| eapo | ρ = 1 |" in table
    written = {path: path.stat().st_mtime_ns for path in (tmp_path / "runs").rglob("*") if path.is_file()}
    again = run_compare(compare)  # finished runs are reused, not retrained
    assert again["methods"]["eapo"]["per_seed_avg_at_k"] == result["methods"]["eapo"]["per_seed_avg_at_k"]
    assert {path: path.stat().st_mtime_ns for path in written} == written  # no run wrote anything
    phases = compare_profile.profile(tmp_path / "runs")  # every run's time, split by phase
    assert set(phases) == {"base", "grpo", "eapo"} and phases["eapo"]["runs"] == 2
    assert all(phases[name][phase] >= 0 for name in phases for phase in compare_profile.PHASES)
    assert phases["grpo"]["rollout"] > 0 and phases["grpo"]["update"] > 0 and phases["base"]["rollout"] == 0
    assert (
        phases["base"]["start"] > 0
        and phases["base"]["evaluation"] > 0
        and phases["eapo"]["sequence_tokens"] > phases["eapo"]["policy_tokens"] > 0
    )
    ratios = compare_profile.versus(phases, "eapo", "grpo")  # EAPO's time per token as a multiple of GRPO's
    eapo, grpo = phases["eapo"], phases["grpo"]
    assert ratios["update_per_sequence_token"] == pytest.approx(
        (eapo["update"] / eapo["sequence_tokens"]) / (grpo["update"] / grpo["sequence_tokens"])
    )
    tokens = ("policy_token", "sequence_token")
    assert set(ratios) == {f"{phase}_per_{t}" for phase in compare_profile.STEP_PHASES for t in tokens}
    assert compare_profile.versus(phases, "eapo", "ppo") == {}  # not in these runs


def test_milestone_table_pairs_each_seed_with_grpo():
    curves = {
        "base": [[(0, 0.10)], [(0, 0.12)]],  # evaluation only: one point stands for every update
        "grpo": [[(2, 0.20), (4, 0.30)], [(2, 0.10), (4, 0.30)]],
        "eapo": [[(2, 0.10), (4, 0.40)], [(2, 0.10), (4, 0.20)]],
    }
    result = {"milestones": [2, 4], "methods": {n: {"per_seed_curve": c} for n, c in curves.items()}}
    lines = milestone_table(result).splitlines()
    assert lines[0] == "| method | update 2 | update 4 |"
    assert "| grpo | 15.0 ± 5.0 | 30.0 ± 0.0 |" in lines
    assert "| eapo − grpo | -5.0 ± 5.0 | +0.0 ± 10.0 |" in lines  # per seed: (-10, 0) and (+10, -10)
    assert "| grpo − base | +4.0 ± 6.0 | +19.0 ± 1.0 |" in lines
    assert milestone_table({**result, "milestones": [4]}) == ""  # one budget: the main table says it


def test_paired_table_differences_each_seed_from_grpo_and_eapo():
    per_seed = {"base": [0.10, 0.12], "grpo": [0.20, 0.16], "eapo": [0.15, 0.20]}
    result = {"seeds": [0, 1], "methods": {n: {"per_seed_avg_at_k": v} for n, v in per_seed.items()}}
    lines = paired_table(result).splitlines()
    assert lines[0] == "| method | − grpo | − eapo |"
    assert "| base | -7.0 ± 3.0 | -6.5 ± 1.5 |" in lines  # per seed: (-10, -4) and (-5, -8)
    assert "| eapo | -0.5 ± 4.5 |  |" in lines
    assert paired_table({**result, "seeds": [0]}) == ""  # one seed: no spread to state


def test_guidance_table_sets_each_guided_method_beside_grpo_by_thirds_of_the_run():
    def series(**values: list[float]) -> dict:
        return {key: [(step + 1, value) for step, value in enumerate(v)] for key, v in values.items()}

    methods = {
        "base": {"series": {}},
        "grpo": {"series": series(accuracy=[0.1] * 6, all_fail_groups=[0.5] * 6, hinted_episodes=[0.0] * 6)},
        "eapo": {
            "series": series(
                helped_episodes=[0.6, 0.4, 0.2, 0.2, 0.0, 0.0], helped_accuracy=[0.3] * 4, accuracy=[0.2] * 6
            )
        },  # fmt: skip
        "hints": {"series": series(hinted_episodes=[1, 1, 1, 1, 0, 0], accuracy=[0.3] * 6)},
        "sft": {"series": series(hinted_episodes=[0.0] * 6)},
    }
    lines = guidance_table({"compare_config": {"steps": 6}, "methods": methods}).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| grpo"] * 3 + ["| eapo"] * 3 + ["| hints"] * 3
    assert "| eapo | 1–2 | 50% | 30% | 20% |  |" in lines and "| hints | 5–6 | 0% |  | 30% |  |" in lines
    assert "| grpo | 3–4 |  |  | 10% | 50% |" in lines  # unguided: the reference
    assert guidance_table({"compare_config": {"steps": 6}, "methods": {"grpo": methods["grpo"]}}) == ""


def test_help_table_windows_the_run_by_acceptance_rate():
    series = {
        "acceptance_rate": [(1, 1.0), (2, 0.5), (3, 0.05)],
        "helped_episodes": [(1, 0.8), (2, 0.4), (3, 0.0)],
        "declined_episodes": [(1, 0.0), (2, 0.2), (3, 0.1)],
        "helped_accuracy": [(1, 0.5), (2, 0.3)],  # no helped episode at update 3
        "declined_accuracy": [(2, 0.05), (3, 0.0)],
        "unasked_accuracy": [(1, 0.1), (2, 0.2), (3, 0.3)],
        "rescued_groups": [(1, 0.25), (2, 0.125), (3, 0.0)],
        "all_fail_groups": [(1, 0.5), (2, 0.5), (3, 0.75)],
    }
    lines = help_table({"methods": {"grpo": {"series": {}}, "eapo": {"series": series}}}).splitlines()
    assert lines[2:] == [
        "| eapo | ρ = 1 | 1–1 | 80% | 0% | 50% |  | 10% | 25% | 50% |",
        "| eapo | 1 > ρ ≥ 0.1 | 2–2 | 40% | 20% | 30% | 5% | 20% | 12% | 50% |",
        "| eapo | ρ < 0.1 | 3–3 | 0% | 10% |  | 0% | 30% | 0% | 75% |",
    ]
    assert help_table({"methods": {"grpo": {"series": {}}}}) == ""


@pytest.mark.parametrize(
    ("eapo", "grpo", "phrase"),
    [((0.162, 0.005), (0.178, 0.008), "do not overlap"), ((0.17, 0.01), (0.178, 0.008), "overlap")],
)
def test_verdict_says_whether_the_std_ranges_overlap_in_either_direction(eapo, grpo, phrase):
    methods = {
        name: {"avg_at_k": mean, "avg_at_k_std": std, "updates_to_grpo_final": None}
        for name, (mean, std) in (("eapo", eapo), ("grpo", grpo))
    }
    lines = verdicts({"methods": methods, "seeds": [0, 1]})
    assert "not met" in lines[0] and lines[0].endswith(f"ranges {phrase}.")


def test_verdicts_state_whether_the_testbed_learns_and_eapo_wins():
    def row(mean: float, std: float = 0.01) -> dict:
        return {"avg_at_k": mean, "avg_at_k_std": std, "updates_to_grpo_final": 40}

    methods = {"base": row(0.10), "grpo": row(0.16), "eapo": row(0.23), "workflow": row(0.3)}
    lines = verdicts({"methods": methods, "seeds": [0, 1]})
    assert lines[0].startswith("- The testbed learns: GRPO - base = +6.0") and lines[0].endswith(": met.")
    assert lines[1].startswith("- EAPO - GRPO = +7.0") and ": met;" in lines[1]
    assert "- EAPO not above workflow." in lines and "- EAPO above base." in lines
    assert lines[-1].startswith("- Updates to reach GRPO's final accuracy: grpo 40, eapo 40, workflow 40 (")
    methods["grpo"] = row(0.12)
    assert verdicts({"methods": methods, "seeds": [0, 1]})[0].endswith(": not met.")


def test_every_row_of_the_plots_has_its_own_colour_and_marker_and_ablations_their_own_panel():
    names = [m.name for m in METHODS + ABLATIONS]
    for panel in (METHODS, ABLATIONS):  # a panel each
        styles = method_styles([m.name for m in panel])
        assert len({style["color"] for style in styles.values()}) == len(panel) <= 18
        assert len({style["marker"] for style in styles.values()}) == len(panel)
    assert ablation_of("eapo_k1", names) == "eapo" and ablation_of("workflow_scripted", names) == "workflow"
    assert all(ablation_of(m.name, names) is None for m in METHODS)
