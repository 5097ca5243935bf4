"""Adaptive hints: the hint's share follows the reward (up when it falls below its running mean, down
when above), reaches the prompts, and survives a checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eapo_agents.algorithms.adaptive_hints import AdaptiveHintAgent, adapted_share
from eapo_agents.rollout.episode import Episode
from eapo_agents.training.loop import train
from eapo_agents.training.policy import load_policy


def test_the_share_moves_against_the_reward():
    assert adapted_share(0.5, reward=0.2, running=0.4, delta=0.1) == pytest.approx(0.6)  # worse: more help
    assert adapted_share(0.5, reward=0.6, running=0.4, delta=0.1) == pytest.approx(0.4)  # better: less
    assert adapted_share(0.5, reward=0.4, running=None, delta=0.1) == 0.5  # no mean yet
    assert adapted_share(0.95, reward=0.0, running=0.4, delta=0.1) == 1.0
    assert adapted_share(0.05, reward=1.0, running=0.4, delta=0.1) == 0.0


@pytest.fixture
def adaptive(small_config, monkeypatch) -> AdaptiveHintAgent:
    """An agent whose rollouts pay the rewards queued in ``agent.rewards`` (each reset's hint kept)."""
    model, tokenizer = load_policy(small_config.model)
    agent = AdaptiveHintAgent(model, tokenizer, small_config.replace(algo="adaptive_hints"))
    agent.rewards, agent.hints = [], []

    def collect(step, problems, group_size, reset_options=None, lock_queries=None):
        agent.hints.append(reset_options["hint"])
        reward = agent.rewards.pop(0)
        return [[Episode("p", [1], reward=reward) for _ in range(group_size)] for _ in range(problems)]

    monkeypatch.setattr(agent, "collect_groups", collect)
    return agent


def test_each_update_plays_the_share_the_last_one_left(adaptive):
    adaptive.rewards = [0.5, 0.2, 0.2, 0.9, 0.9]
    for step in range(1, 6):
        adaptive.training_groups(step)
    assert adaptive.hints == pytest.approx([0.5, 0.5, 0.6, 0.7, 0.6])
    assert adaptive.hint_share == pytest.approx(0.5)
    state = adaptive.state_dict()
    adaptive.hint_share, adaptive.running_reward = 0.0, None
    adaptive.load_state_dict(state)
    assert adaptive.hint_share == pytest.approx(0.5) and adaptive.running_reward == state["running_reward"]


def test_adaptive_hints_train_with_the_hint_in_the_prompts(small_config):
    config = small_config.replace(algo="adaptive_hints", train_difficulties=(3,), hint_start=1.0)
    train(config, progress=False)
    log = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in log if "loss" in row]
    assert rows[0]["hint_share"] == 1.0 and rows[0]["hinted_episodes"] == 1.0
    assert all(math.isfinite(row["loss"]) for row in rows)
