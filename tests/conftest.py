"""Shared fixtures: a small warm-started tiny policy, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eapo_agents.experiments.presets import WARM_START, tiny_policy_path
from eapo_agents.training.config import TrainConfig

TEST_WARM_START = WARM_START.replace(
    steps=60, sft_batch_size=32, eval_problems=8, eval_k=1, eval_difficulties=(1,)
)


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny policy warm-started for 60 SFT steps (it emits the protocol, consultations included)."""
    return tiny_policy_path(TEST_WARM_START, cache=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def small_config(tiny_model_dir, tmp_path) -> TrainConfig:
    """A few-second GRPO configuration on easy problems; ``small_config.replace(algo=...)`` for others
    (SFT-style agents also want ``sft_batch_size=8``)."""
    return TrainConfig(
        model=str(tiny_model_dir),
        out=str(tmp_path / "run"),
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
