"""``eapo-gym compare``: the jobs, the aggregation over seeds, and the written table, JSON and plots."""

from __future__ import annotations

import json

import pytest

from eapo_agents.experiments.compare import (
    ABLATIONS,
    METHODS,
    CompareConfig,
    aggregate,
    command_line,
    job_config,
    method_by_name,
    pick_train_difficulty,
    run_compare,
    updates_to_reach,
)
from eapo_agents.experiments.report import markdown_table, verdicts


def test_training_difficulty_is_the_easiest_sparse_level():
    assert pick_train_difficulty({1: 0.6, 2: 0.3, 3: 0.08, 4: 0.0}, 0.2) == 3
    assert pick_train_difficulty({1: 0.1, 2: 0.0}, 0.2) == 1
    assert pick_train_difficulty({1: 0.9, 2: 0.5}, 0.2) == 3


def test_every_method_of_the_issue_and_its_overrides(tmp_path):
    names = {m.name for m in METHODS + ABLATIONS}
    assert {"base", "sft", "workflow", "distill", "grpo", "ppo", "eapo"} <= names
    assert {"eapo_k1", "eapo_sequential", "eapo_noisy", "eapo_constant", "eapo_model_expert"} <= names
    compare = CompareConfig(steps=7, out=str(tmp_path), expert_model="/models/expert")
    k1 = job_config(method_by_name("eapo_k1"), 2, compare, 3, tmp_path)
    assert (k1.algo, k1.max_queries, k1.seed, k1.steps) == ("eapo", 1, 2, 7)
    assert (k1.train_difficulties, k1.eval_difficulties) == ((3,), (3, 4))
    assert job_config(method_by_name("eapo_model_expert"), 0, compare, 3, tmp_path).experts == (
        "model:/models/expert"
    )
    assert job_config(method_by_name("eapo_noisy"), 0, compare, 3, tmp_path).expert_noise == 0.3
    assert (
        job_config(method_by_name("eapo_constant"), 0, compare, 3, tmp_path).options.acceptance
        == "constant:1"
    )
    assert not job_config(method_by_name("eapo_sequential"), 0, compare, 3, tmp_path).parallel_experts
    with pytest.raises(ValueError, match="unknown method"):
        method_by_name("nope")


def test_command_line_reproduces_the_config():
    assert command_line(CompareConfig()) == "eapo-gym compare"
    assert command_line(CompareConfig.quick_preset()) == "eapo-gym compare --quick"
    assert command_line(CompareConfig(seeds=(0, 1), steps=5)) == "eapo-gym compare --seeds 0,1 --steps 5"


def _run(avg: float, curve: list, calls: float = 0.0) -> dict:
    final = {"eval/avg_at_k": avg, "eval/pass_at_k": min(1.0, 2 * avg), "eval/avg_at_k_var": 0.01,
             "eval/d3/avg_at_k": avg + 0.05, "eval/d4/avg_at_k": avg - 0.05, "eval/format_rate": 1.0,
             "eval/consult_rate": 0.0, "eval/response_tokens": 20.0}  # fmt: skip
    series = {"consult_rate": [(1, 0.5), (2, 0.25)], "all_equal_groups": [(1, 0.5), (2, 0.5)]}
    return {"final": final, "curve": curve, "series": series, "train_seconds": 10.0, "expert_calls": calls,
            "expert_chars": 10 * calls}  # fmt: skip


def test_aggregate_means_and_stds_over_seeds():
    runs = {
        "grpo": {0: _run(0.2, [(10, 0.1), (20, 0.2)]), 1: _run(0.4, [(10, 0.3), (20, 0.4)])},
        "eapo": {0: _run(0.5, [(10, 0.4), (20, 0.5)], 30), 1: _run(0.5, [(10, 0.2), (20, 0.5)], 10)},
    }
    rows = aggregate(runs, 3)
    assert rows["grpo"]["avg_at_k"] == pytest.approx(0.3)
    assert rows["grpo"]["avg_at_k_std"] == pytest.approx(0.1)
    assert rows["eapo"]["avg_at_k_std"] == 0.0 and rows["eapo"]["expert_calls"] == 20.0
    assert rows["eapo"]["avg_at_k_train_level"] == pytest.approx(0.55)
    assert rows["eapo"]["curve"] == [(10, pytest.approx(0.3)), (20, pytest.approx(0.5))]
    assert rows["grpo"]["series"]["consult_rate"] == [(1, 0.5), (2, 0.25)]
    assert updates_to_reach(rows["eapo"]["curve"], rows["grpo"]["avg_at_k"]) == 10
    assert updates_to_reach(rows["grpo"]["curve"], 0.9) is None


def test_compare_end_to_end_writes_json_table_and_plots(tiny_model_dir, tmp_path):
    compare = CompareConfig(
        seeds=(0, 1), methods=("base", "grpo", "eapo"), steps=2, eval_every=1, eval_k=2, eval_problems=2,
        train_difficulty=1, workers=1, policy=str(tiny_model_dir), out=str(tmp_path / "runs"),
        results=str(tmp_path / "results"),
    )  # fmt: skip
    result = run_compare(compare)
    saved = json.loads((tmp_path / "results" / "compare.json").read_text())
    assert saved["command"].startswith("eapo-gym compare") and saved["seeds"] == [0, 1]
    for name in ("base", "grpo", "eapo"):
        row = saved["methods"][name]
        for key in ("avg_at_k", "avg_at_k_std", "pass_at_k", "wall_s", "expert_calls"):
            assert isinstance(row[key], float) and 0.0 <= row[key], (name, key)
        assert len(row["per_seed_avg_at_k"]) == 2
    assert saved["methods"]["grpo"]["expert_calls"] == 0.0 and saved["methods"]["eapo"]["expert_calls"] > 0
    assert [step for step, _ in saved["methods"]["grpo"]["curve"]] == [0, 1, 2]
    assert saved["methods"]["eapo"]["series"]["acceptance_rate"][0] == [1, 1.0]
    for plot in ("accuracy", "consult", "sparsity"):
        assert (tmp_path / "results" / f"compare_{plot}.png").stat().st_size > 1000
    table = (tmp_path / "results" / "compare.md").read_text()
    assert table.count("\n| ") == 4 and "| eapo |" in table and "64.07" in table
    assert markdown_table(result) in table
    written = {path: path.stat().st_mtime_ns for path in (tmp_path / "runs").rglob("*") if path.is_file()}
    again = run_compare(compare)  # finished runs are reused, not retrained
    assert again["methods"]["eapo"]["per_seed_avg_at_k"] == result["methods"]["eapo"]["per_seed_avg_at_k"]
    assert {path: path.stat().st_mtime_ns for path in written} == written  # no run wrote anything


@pytest.mark.parametrize(
    ("eapo", "grpo", "phrase"),
    [((0.162, 0.005), (0.178, 0.008), "do not overlap"), ((0.17, 0.01), (0.178, 0.008), "overlap")],
)
def test_verdict_says_whether_the_std_ranges_overlap_in_either_direction(eapo, grpo, phrase):
    methods = {
        name: {"avg_at_k": mean, "avg_at_k_std": std, "updates_to_grpo_final": None}
        for name, (mean, std) in (("eapo", eapo), ("grpo", grpo))
    }
    first = verdicts({"methods": methods})[0]
    assert "not met" in first and first.endswith(f"ranges {phrase}.")
