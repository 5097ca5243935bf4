"""Shared fixtures: a copy of the shipped warm-started tiny policy, and a small training configuration.

Tests run on the CPU, in CI as on a machine with a GPU: those that mean the CPU say ``device="cpu"``,
and those that need CUDA carry the ``gpu`` marker and are skipped without it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from eapo_agents.experiments.presets import tiny_policy_path
from eapo_agents.training.config import TrainConfig


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``gpu`` tests where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    torch.set_num_threads(2)


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
