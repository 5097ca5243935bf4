"""Help when the whole group fails: only all-fail groups are replayed with a hint, and the hinted
rollouts are trained without the hint against their sampler's log-probabilities."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from eapo_agents.algorithms.guide import GuideAgent, is_hinted, without_hint
from eapo_agents.training.loop import train
from eapo_agents.training.policy import load_policy


def guide_agent(config, **options) -> GuideAgent:
    model, tokenizer = load_policy(config.model)
    return GuideAgent(model, tokenizer, config.replace(algo="guide", **options))


@pytest.fixture
def guide(small_config) -> GuideAgent:
    return guide_agent(small_config, problems_per_step=6, train_difficulties=(3,))


def test_only_groups_whose_rollouts_all_failed_get_the_hint(guide):
    groups = guide.training_groups(1)
    hinted_groups = [group for group in groups if any(map(is_hinted, group))]
    assert hinted_groups, "at level 3 the tiny policy fails whole groups"
    for group in groups:
        hinted = [e for e in group if is_hinted(e)]
        unaided = [e for e in group if not is_hinted(e)]
        if hinted:
            assert len(hinted) == 2 and group[-2:] == hinted  # half of the group, replayed last
            assert not any(e.info["correct"] for e in unaided)  # the group had failed unaided
            assert {e.problem_id for e in group} == {group[0].problem_id}
    assert len(hinted_groups) < len(groups) or all(
        not any(e.info["correct"] for e in group if not is_hinted(e)) for group in groups
    )


def test_groups_with_a_success_are_left_alone(small_config):
    easy = guide_agent(small_config, problems_per_step=4)  # level 1: the policy solves most
    groups = easy.training_groups(1)
    for group in groups:
        if any(e.info["correct"] for e in group if not is_hinted(e)):
            assert not any(map(is_hinted, group))


def test_hinted_rollouts_are_trained_without_the_hint_against_the_samplers_logprobs(guide):
    groups = guide.training_groups(1)
    episodes = [e for group in groups for e in group]
    hinted = torch.tensor([is_hinted(e) for e in episodes])
    batch = guide.pack(episodes)
    lengths = batch.attention_mask.sum(1).tolist()
    for row, episode in enumerate(episodes):
        trained = without_hint(episode) if is_hinted(episode) else episode
        assert lengths[row] == len(trained.prompt_ids) + len(trained.completion_ids)
        if is_hinted(episode):
            assert len(trained.prompt_ids) == len(episode.prompt_ids) - episode.hint_length
    with torch.no_grad():
        trainer = guide.logprobs(guide.model, batch)
    old, _ = guide.old_logprobs(batch, trainer, episodes)
    assert torch.equal(old[hinted], batch.sampled_logprobs[hinted])
    assert torch.equal(old[~hinted], trainer[~hinted])
    policy = batch.loss_mask[hinted] > 0
    assert not torch.allclose(old[hinted][policy], trainer[hinted][policy])  # the hint changed them


def test_guide_trains_and_logs_the_hinted_groups(small_config):
    config = small_config.replace(algo="guide", train_difficulties=(3,))
    train(config, progress=False)
    log = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in log if "loss" in row]
    assert all(math.isfinite(row["loss"]) for row in rows)
    assert any(row["hinted_episodes"] > 0 for row in rows) and "hinted_accuracy" in rows[0]
