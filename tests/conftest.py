"""Shared fixtures: a small warm-started tiny policy, built once per test session."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from agents.config import TrainConfig
from agents.tiny import WARM_START, tiny_policy_path

TEST_WARM_START = dataclasses.replace(
    WARM_START, steps=60, sft_batch_size=32, eval_problems=8, eval_k=1, eval_difficulties=(1,)
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
    """A few-second training configuration on easy problems."""
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
        sft_batch_size=8,
        tensorboard=False,
    )
