"""``eapo-gym warm-start`` and ``compare --preset``, end to end on a micro preset registered for the test."""

from __future__ import annotations

import json

import pytest

from eapo_agents.cli import main
from eapo_agents.experiments import presets
from eapo_agents.experiments.compare import CompareConfig, run_compare
from eapo_agents.training.policy import TinyModelConfig

MICRO_MODEL = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


@pytest.fixture
def micro_preset(monkeypatch, tmp_path):
    """A two-stage warm start (solve, then ask) of a few SFT steps, and its model expert."""
    solving = presets.SOLVING.replace(steps=2, eval_problems=2, eval_k=1, sft_batch_size=4)
    recipes = {
        "micro-policy": ((solving, solving.replace(consult_fraction=0.5)), MICRO_MODEL),
        "micro-expert": ((solving,), MICRO_MODEL),
    }
    monkeypatch.setattr(presets, "BUILT_PRESETS", {**presets.BUILT_PRESETS, **recipes})
    monkeypatch.setenv("EAPO_GYM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_warm_start_writes_both_models_and_their_accuracy_then_compare_starts_from_them(
    micro_preset, tmp_path, capsys
):
    main(["warm-start", "--preset", "micro", "--device", "cpu", "--out", str(micro_preset)])
    printed = capsys.readouterr().out.splitlines()
    for role in ("policy", "expert"):
        path = presets.preset_path("micro", role)
        assert path.parent == micro_preset and (path / "model.safetensors").exists()
        accuracy = json.loads((path / presets.WARM_START_EVAL).read_text())
        assert set(accuracy) == {"train", "test"}
        assert f"micro {role}: {path}" in printed
        assert any(line.startswith(f"micro {role} (train split, avg@k): d1 ") for line in printed)

    compare = CompareConfig.for_preset(
        "micro", seeds=(0,), methods=("base", "eapo_model_expert"), steps=1, eval_every=1, eval_k=1,
        eval_problems=2, train_levels=(1, 2), workers=1, device="cpu", out=str(tmp_path / "runs"),
        results=str(tmp_path / "results"),
    )  # fmt: skip
    result = run_compare(compare)
    assert compare.stem == "compare_micro_steps1"
    assert result["command"].startswith("eapo-gym compare --preset micro")
    trained = result["train_config"]["eapo_model_expert"]
    assert trained["model"] == str(presets.preset_path("micro", "policy")) and trained["device"] == "cpu"
    assert trained["experts"] == f"model:{presets.preset_path('micro', 'expert')}"
    report = (tmp_path / "results" / "compare_micro_steps1.md").read_text()
    assert "| method | gain (points) | run s / point | expert calls / point |" in report


def test_an_unknown_preset_is_one_line(capsys):
    for command in (["warm-start", "--preset", "huge"], ["compare", "--preset", "huge"]):
        with pytest.raises(SystemExit) as stop:
            main(command)
        assert stop.value.code == 2
        line = capsys.readouterr().err.strip()
        assert line.endswith("--preset huge: not a preset; choose one of small, tiny")
