"""Shared fixtures: a copy of the shipped warm-started tiny policy, and a small training configuration.

Tests run alike in CI and on a machine with a GPU: a test without the ``gpu`` marker sees no CUDA
device, so ``device="auto"`` means the CPU there too (and a CPU test says ``device="cpu"`` where it
builds a configuration); a test with the ``gpu`` marker is skipped where there is no CUDA device.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from eapo_agents.experiments.presets import tiny_policy_path
from eapo_agents.training.config import TrainConfig

HAS_CUDA = torch.cuda.is_available()
_sees_cuda = False  # whether the running test (its fixtures included) may see the CUDA device


def _cuda_is_available() -> bool:
    return _sees_cuda


torch.cuda.is_available = _cuda_is_available


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``gpu`` tests where there is no CUDA device."""
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Before a test's fixtures are set up: CUDA is visible to ``gpu`` tests only."""
    global _sees_cuda
    _sees_cuda = HAS_CUDA and "gpu" in item.keywords


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture
def fake_gpus(monkeypatch):
    """``fake_gpus(count, bf16=True)``: torch sees ``count`` CUDA devices, for the settings' checks only."""

    def see(count: int, bf16: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args: bf16)

    return see


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A copy of the shipped warm-started tiny policy (it emits the protocol, consultations included)."""
    copy = tmp_path_factory.mktemp("presets") / "tiny-policy"
    shutil.copytree(tiny_policy_path(), copy)
    return copy


@pytest.fixture
def small_config(tiny_model_dir, tmp_path) -> TrainConfig:
    """A few-second GRPO configuration on easy problems; ``small_config.replace(algo=...)`` for others
    (SFT-style agents also want ``sft_batch_size=8``)."""
    return TrainConfig(
        model=str(tiny_model_dir),
        out=str(tmp_path / "run"),
        device="cpu",
        steps=2,
        problems_per_step=2,
        group_size=4,
        train_difficulties=(1,),
        eval_difficulties=(1,),
        eval_problems=4,
        eval_k=2,
        eval_every=100,
        save_every=1,
        tensorboard=False,
    )
