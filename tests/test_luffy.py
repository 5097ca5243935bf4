"""LUFFY: each group mixes the policy's rollouts with the reference solution, learned through f(pi)
without clipping; the run logs the policy's own play."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from eapo_agents.algorithms.luffy import LUFFYAgent, is_off_policy
from eapo_agents.algorithms.policy_gradient import shaped_probability
from eapo_agents.training.batch import loss_weights
from eapo_agents.training.config import SettingError
from eapo_agents.training.loop import train
from eapo_agents.training.policy import load_policy


@pytest.fixture
def luffy(small_config) -> LUFFYAgent:
    model, tokenizer = load_policy(small_config.model)
    return LUFFYAgent(model, tokenizer, small_config.replace(algo="luffy", off_policy_traces=1))


def test_each_group_holds_the_policys_rollouts_and_one_reference_trace(luffy):
    groups = luffy.training_groups(1)
    config = luffy.config
    assert len(groups) == config.problems_per_step
    for group in groups:
        assert len(group) == config.group_size
        traces = [e for e in group if is_off_policy(e)]
        assert len(traces) == 1 and all(not is_off_policy(e) for e in group[:-1])
        assert {e.problem_id for e in group} == {group[0].problem_id}  # the trace solves the group's problem
        trace = traces[0]
        assert trace.info["correct"] and trace.reward == 1.0  # the reference solution is right
        assert all(math.isnan(lp) for lp, m in zip(trace.sample_logprobs, trace.mask, strict=True) if m)
        assert all(not math.isnan(lp) for e in group[:-1] for lp in e.sample_logprobs)  # sampled
    rollouts = [e for group in groups for e in group[:-1]]
    logged = luffy.rollout_metrics([e for group in groups for e in group])
    assert logged["accuracy"] == sum(bool(e.info["correct"]) for e in rollouts) / len(rollouts)
    assert luffy.group_metrics(groups)["all_fail_groups"] == sum(
        not any(e.info["correct"] for e in group[:-1]) for group in groups
    ) / len(groups)  # the traces, always right, would make it 0


def test_trace_tokens_learn_through_shaped_probability_unclipped_and_rollouts_through_the_clip(luffy):
    """A ratio far outside the clip range stops the rollouts' gradient but not the trace's, whose
    gradient is exactly d/dlogp of f(pi) A w."""
    groups = luffy.training_groups(1)
    episodes = [e for group in groups for e in group]
    batch = luffy.pack(episodes)
    advantages = torch.ones_like(batch.loss_mask)
    logp = torch.full_like(batch.loss_mask, -1.0, requires_grad=True)
    old = logp.detach() - 2.0  # ratio e^2: clipped for a positive advantage
    weights = loss_weights(batch.loss_mask)
    batch = dataclasses.replace(
        batch, advantages=advantages, old_logprobs=old, weights=weights, share=weights
    )
    batch = dataclasses.replace(batch, extras=luffy.loss_inputs(batch, episodes))
    off = batch.extras["off_policy"]
    assert off.sum() > 0 and torch.equal(off, batch.loss_mask * (off > 0))
    loss, stats = luffy.objective(logp, batch)
    loss.backward()
    assert torch.all(logp.grad[(batch.loss_mask > 0) & (off == 0)] == 0)  # clipped rollout tokens
    gamma = luffy.options.off_policy_shaping
    p = math.exp(-1.0)
    expected = -(gamma * p / (p + gamma) ** 2) * weights  # d f / d logp = gamma p / (p + gamma)^2
    torch.testing.assert_close(logp.grad[off > 0], expected[off > 0])
    term = (shaped_probability(logp.detach(), gamma) * weights * off).sum()
    assert float(stats["off_policy_term"]) == pytest.approx(float(term))


def test_a_group_keeps_one_rollout_at_least(small_config):
    with pytest.raises(SettingError, match="off_policy_traces"):
        small_config.replace(algo="luffy", off_policy_traces=small_config.group_size)


def test_luffy_trains_and_logs_the_policys_own_play(small_config):
    config = small_config.replace(algo="luffy", train_difficulties=(3,))  # rollouts fail: traces stand out
    train(config, progress=False)
    log = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in log if "loss" in row]
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert math.isfinite(row["loss"]) and row["off_policy_term"] > 0
        assert row["trained_episodes"] == config.problems_per_step * config.group_size
