"""Training and evaluation in reduced precision, as on a GPU: bfloat16 (the CUDA default) and float16
(mixed precision). CI runs them on the CPU; the ``gpu`` cases run the same code on CUDA."""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from eapo_agents.cli import main
from eapo_agents.engines import trl_train
from eapo_agents.experiments.compare import CompareConfig, run_compare
from eapo_agents.training import policy
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.evaluation import evaluate
from eapo_agents.training.loop import train
from eapo_agents.training.policy import load_policy, pick_device, weights_dtype
from eapo_agents.training.registry import agent_class, built_in

ALGORITHMS = tuple(name for name in sorted(built_in()) if agent_class(name).trains)  # every built-in one
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
UPDATES = {"cpu": 2, "cuda": 3}


def reduced_precision_run(small_config, algo: str, dtype: str, device: str, **changes):
    """A few updates of ``algo`` on problems the tiny policy sometimes solves (so groups differ)."""
    values = {
        "algo": algo, "dtype": dtype, "device": device, "steps": UPDATES[device], "train_difficulties": (3,),
        "problems_per_step": 4, "group_size": 4, "eval_problems": 2, "eval_k": 1,
    }  # fmt: skip
    if algo in ("sft", "distill"):
        values["sft_batch_size"] = 8
    if algo == "hints":  # hinted level-3 groups of the tiny policy all fail in two updates; level 2 differs
        values["train_difficulties"] = (2,)
    return small_config.replace(**{**values, **changes})


def saved_weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def assert_trained(config, start: Path) -> None:
    """Finite losses, a gradient at some update, and weights that moved, held in the run's dtype."""
    rows = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "loss" in row]
    assert len(updates) == config.steps
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"]) for row in updates)
    assert any(row["grad_norm"] > 0 for row in updates), "no update had a gradient"
    before, after = saved_weights(start), saved_weights(Path(config.out) / "checkpoint" / "model")
    held = weights_dtype(pick_device(config.device), config.dtype)
    assert {tensor.dtype for tensor in after.values()} == {held}
    moved = [name for name in before if not torch.equal(before[name].to(held), after[name])]
    assert len(moved) > len(before) // 2, f"only {len(moved)} of {len(before)} tensors moved"


# bfloat16 for every algorithm; float16 (mixed precision) for a policy-gradient and a supervised one on
# the CPU, where it is slow, and for every algorithm on CUDA
PRECISION_CASES = [
    *[(algo, "bfloat16", "cpu") for algo in ALGORITHMS],
    ("grpo", "float16", "cpu"),
    ("sft", "float16", "cpu"),
    *[
        pytest.param(algo, dtype, "cuda", marks=pytest.mark.gpu)
        for algo in ALGORITHMS
        for dtype in ("bfloat16", "float16")
    ],
]


@pytest.mark.parametrize(("algo", "dtype", "device"), PRECISION_CASES)
def test_each_algorithm_trains_in_reduced_precision(algo, dtype, device, small_config, tiny_model_dir):
    config = reduced_precision_run(small_config, algo, dtype, device)
    final = train(config, progress=False)
    assert_trained(config, tiny_model_dir)
    assert 0 <= final["eval/avg_at_k"] <= final["eval/pass_at_k"] <= 1


@pytest.mark.parametrize(
    ("dtype", "device"),
    [("bfloat16", "cpu"), pytest.param("bfloat16", "cuda", marks=pytest.mark.gpu),
     pytest.param("float16", "cuda", marks=pytest.mark.gpu)],
)  # fmt: skip
def test_the_trl_engine_trains_in_reduced_precision(dtype, device, small_config, tiny_model_dir):
    config = reduced_precision_run(
        small_config,
        "eapo",
        dtype,
        device,
        engine="trl",
        train_difficulties=(2,),
        save_every=TrainConfig.save_every,
    )  # the TRL engine saves at the end only
    trl_train.train(config, progress=False)
    assert_trained(config, tiny_model_dir)


@pytest.mark.parametrize("device", DEVICES)
def test_lora_trains_its_adapter_in_bfloat16(device, small_config):
    config = reduced_precision_run(small_config, "grpo", "bfloat16", device, lora_rank=4)
    train(config, progress=False)
    rows = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(row["loss"]) for row in rows if "loss" in row)
    adapter = load_file(str(Path(config.out) / "checkpoint" / "model" / "adapter_model.safetensors"))
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    assert lora_b and any(tensor.abs().max() > 0 for tensor in lora_b)  # B starts at zero


@pytest.mark.parametrize("device", DEVICES)
def test_eval_runs_in_the_runs_dtype(device, small_config, monkeypatch):
    """``eapo-gym eval`` of a bf16 run loads and evaluates it in bf16 on the run's device."""
    config = reduced_precision_run(small_config, "sft", "bfloat16", device, steps=1)
    train(config, progress=False)
    loaded = []

    def recording_load_policy(*args, **kwargs):
        model, tokenizer = load_policy(*args, **kwargs)
        loaded.append((model.dtype, model.device.type))
        return model, tokenizer

    monkeypatch.setattr(policy, "load_policy", recording_load_policy)
    main(["eval", "--checkpoint", config.out, "--k", "2", "--problems", "2"])
    assert loaded == [(torch.bfloat16, device)]
    metrics = json.loads((Path(config.out) / "eval_k2.json").read_text())
    assert 0 <= metrics["eval/avg_at_k"] <= metrics["eval/pass_at_k"] <= 1 and metrics["eval/format_rate"] > 0
    model, tokenizer = load_policy(Path(config.out) / "checkpoint" / "model", device, "bfloat16")
    assert model.dtype == torch.bfloat16
    again = evaluate(model, tokenizer, config, k=2, problems=2)
    assert set(again) == set(metrics) and 0 <= again["eval/avg_at_k"] <= 1
    if device == "cpu":  # same seeds, same metrics (a GPU's bf16 kernels need not repeat bit for bit)
        assert again == metrics


def test_compare_quicks_smallest_configuration_in_bfloat16(tiny_model_dir, tmp_path):
    compare = CompareConfig.quick_preset(
        methods=("grpo",), steps=1, eval_every=1, eval_k=1, eval_problems=2, train_levels=(1,), workers=1,
        policy=str(tiny_model_dir), out=str(tmp_path / "runs"), results=str(tmp_path / "results"),
        device="cpu", dtype="bfloat16",
    )  # fmt: skip
    result = run_compare(compare)
    run = tmp_path / "runs" / "grpo" / "seed0"
    saved = json.loads((run / "config.json").read_text())
    assert saved["dtype"] == "bfloat16" and "device" not in saved  # the device follows the machine
    assert {t.dtype for t in saved_weights(run / "checkpoint" / "model").values()} == {torch.bfloat16}
    assert 0 <= result["methods"]["grpo"]["avg_at_k"] <= 1


@pytest.mark.gpu
def test_gpu_memory_is_released_after_a_run(small_config):
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    config = reduced_precision_run(small_config, "eapo", "bfloat16", "cuda")
    train(config, progress=False)
    gc.collect()
    torch.cuda.empty_cache()
    assert torch.cuda.memory_allocated() - before < 2**20  # less than 1 MiB left behind
