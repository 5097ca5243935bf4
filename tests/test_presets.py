"""The shipped presets: checked by hash, used without training, rebuilt only when their recipe changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from eapo_agents.experiments import presets
from eapo_agents.training.config import SettingError, TrainConfig
from eapo_agents.training.policy import build_tiny_model
from eapo_gym.tokenizer import load_tokenizer


def test_the_shipped_presets_match_their_recipes_and_hashes():
    manifest = json.loads(presets.MANIFEST.read_text())
    assert set(manifest) == set(presets.PRESETS)
    for name, (recipe, model) in presets.PRESETS.items():
        assert manifest[name]["key"] == presets.settings_key(
            recipe, model
        )  # the recipe has not changed since
        for file, digest in manifest[name]["sha256"].items():
            assert presets.file_sha256(presets.SHIPPED / name / file) == digest
        accuracy = presets.warm_start_accuracy(presets.SHIPPED / name, "train")
        assert set(accuracy) == set(recipe[-1].eval_difficulties)


def test_the_default_presets_load_without_training(monkeypatch):
    monkeypatch.setattr(presets, "build", lambda *args: pytest.fail("a shipped preset was rebuilt"))
    assert presets.tiny_policy_path() == presets.SHIPPED / "tiny-policy"
    assert presets.expert_model_path() == presets.SHIPPED / "tiny-expert"


def test_a_changed_file_fails_its_hash_check(tmp_path, monkeypatch):
    copy = tmp_path / "weights"
    shutil.copytree(presets.SHIPPED, copy)
    monkeypatch.setattr(presets, "SHIPPED", copy)
    monkeypatch.setattr(presets, "MANIFEST", copy / "manifest.json")
    weights = copy / "tiny-policy" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(
        RuntimeError, match="fail their hash check; python -m eapo_agents.experiments.presets"
    ):
        presets.tiny_policy_path()


def test_other_settings_are_built_into_the_cache(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(presets, "build", lambda recipe, model, path, *device_dtype: built.append(path))
    recipe = (presets.SOLVING.replace(steps=3),)
    path = presets.tiny_policy_path(recipe, cache=tmp_path)
    assert built == [path] and path.parent == tmp_path and path.name.startswith("tiny-")


def test_the_small_preset_is_gpu_sized_with_a_larger_expert():
    tokenizer = load_tokenizer()
    with torch.device("meta"):
        sizes = {
            name: sum(weights.numel() for weights in build_tiny_model(tokenizer, model).parameters())
            for name, (_, model) in presets.BUILT_PRESETS.items()
        }
    assert 25e6 < sizes["small-policy"] < 35e6 and sizes["small-expert"] > 2 * sizes["small-policy"]
    solving, asking = presets.BUILT_PRESETS["small-policy"][0]
    assert (solving.options.consult_fraction, asking.options.consult_fraction) == (0.0, 0.5)
    assert presets.preset_names() == ["small", "tiny"]


def test_a_preset_not_shipped_is_trained_on_the_asked_device_into_the_cache(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(presets, "build", lambda recipe, model, path, *settings: built.append(settings))
    path = presets.preset_path("small", "expert", cache=tmp_path, device="cpu", dtype="bfloat16")
    assert built == [("cpu", "bfloat16")] and path.parent == tmp_path and path.name.startswith("small-")
    assert presets.preset_path("tiny", "expert") == presets.SHIPPED / "tiny-expert"
    with pytest.raises(ValueError, match="preset huge: not a preset; choose one of small, tiny"):
        presets.preset_path("huge")


def test_a_run_without_a_model_starts_from_its_preset_built_once(tmp_path, monkeypatch):
    """``with_starting_model`` resolves --preset for the loop; under a multi-process launcher, where
    every process resolves it, a preset not built yet is refused instead of trained by each."""
    built = []
    monkeypatch.setattr(presets, "build", lambda recipe, model, path, *settings: built.append(path))
    monkeypatch.setenv("EAPO_GYM_CACHE", str(tmp_path))
    assert presets.with_starting_model(TrainConfig()).model == str(presets.SHIPPED / "tiny-policy")
    assert presets.with_starting_model(TrainConfig(model="mine")).model == "mine"
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SettingError, match=r"^preset small: not built here yet \(eapo-gym warm-start"):
        presets.with_starting_model(TrainConfig(preset="small"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    started = presets.with_starting_model(TrainConfig(preset="small", device="cpu"))
    assert built == [Path(started.model)] and Path(started.model).parent == tmp_path
