"""``eapo-gym compare --tune``: one tuning budget for every trained method, and its winners in ``compare``."""

from __future__ import annotations

import json

from eapo_agents.experiments import compare as compare_module
from eapo_agents.experiments import tuning
from eapo_agents.experiments.compare import CompareConfig, job_config, method_by_name


def test_every_trained_method_gets_the_same_number_of_runs():
    methods = tuning.tuned_methods(CompareConfig())
    names = {m.name for m in methods}
    assert {"sft", "distill", "grpo", "ppo", "eapo", "luffy", "guide", "hints", "adaptive_hints"} <= names
    assert not names & {"base", "workflow", "eapo_k1", "workflow_scripted"}  # no training, or an ablation
    assert {len(tuning.grid(m.algo)) for m in methods} == {len(tuning.LR_FACTORS)}
    assert [p["lr"] for p in tuning.grid("grpo")] == [1e-5, 3.33e-5, 1e-4, 3e-4]
    assert [p["lr"] for p in tuning.grid("sft")] == [5e-5, 1.67e-4, 5e-4, 1.5e-3]
    assert {(p["lr"], p["value_coef"]) for p in tuning.grid("ppo")} == {(1e-5, 0.1), (1e-5, 0.5), (3e-5, 0.1),
                                                                       (3e-5, 0.5)}  # fmt: skip


def test_the_rule_takes_the_best_and_a_tie_goes_to_the_smaller_rate():
    assert tuning._winner("grpo", {"lr=1e-05": 0.1, "lr=3.33e-05": 0.2, "lr=0.0001": 0.15}) == {"lr": 3.33e-5}
    assert tuning._winner("grpo", {"lr=0.0001": 0.2, "lr=3.33e-05": 0.2}) == {"lr": 3.33e-5}
    assert tuning._winner("ppo", {"lr=3e-05,value_coef=0.1": 0.1, "lr=1e-05,value_coef=0.5": 0.1}) == {
        "lr": 1e-5, "value_coef": 0.5}  # fmt: skip


def test_tuned_settings_reach_the_method_and_its_ablations(monkeypatch, tmp_path):
    monkeypatch.setattr(
        compare_module, "TUNED", {"eapo": {"lr": 3e-5}, "ppo": {"lr": 1e-5, "value_coef": 0.1}}
    )
    compare = CompareConfig(out=str(tmp_path))

    def config(name: str, given: CompareConfig = compare):
        return job_config(method_by_name(name), 0, given, (2, 3), tmp_path)

    assert config("eapo").lr == config("eapo_k1").lr == 3e-5  # an ablation takes its algorithm's
    assert (config("ppo").lr, config("ppo").options.value_coef) == (1e-5, 0.1)
    assert config("grpo").lr == compare_module.RL_LR and config("sft").lr == compare_module.SUPERVISED_LR
    one_rate = CompareConfig(out=str(tmp_path), lr=2e-4)  # --lr: one rate for every RL method
    assert config("eapo", one_rate).lr == config("grpo", one_rate).lr == 2e-4
    assert config("sft", one_rate).lr == compare_module.SUPERVISED_LR


def test_tune_end_to_end_on_the_training_split(monkeypatch, tiny_model_dir, tmp_path):
    monkeypatch.setattr(tuning, "TUNE_STEPS", 1)
    compare = CompareConfig(
        tune=True, methods=("grpo",), eval_k=1, eval_problems=2, train_levels=(1, 2), workers=2,
        policy=str(tiny_model_dir), out=str(tmp_path / "runs"), results=str(tmp_path / "results"),
    )  # fmt: skip
    result = tuning.run_tuning(compare)
    assert set(result["scores"]["grpo"]) == {tuning.label(p) for p in tuning.grid("grpo")}
    assert result["chosen"]["grpo"] in tuning.grid("grpo")
    runs = sorted((tmp_path / "runs" / "tune" / "grpo").glob("*/seed0"))
    assert len(runs) == 4 and not any((run / "eval_declined.json").exists() for run in runs)
    settings = [json.loads((run / "config.json").read_text()) for run in runs]
    assert {s["eval_split"] for s in settings} == {"train"} and {s["steps"] for s in settings} == {1}
    assert "| grpo |" in (tmp_path / "results" / "tuning.md").read_text()
