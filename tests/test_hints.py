"""Annealed hints: the reference-solution prefix in the prompt shrinks over the run to none, and only
the policy's own tokens learn."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eapo_agents.algorithms.hints import AnnealedHintAgent
from eapo_agents.training.config import SettingError
from eapo_agents.training.loop import train
from eapo_agents.training.policy import load_policy


@pytest.fixture
def hints(small_config) -> AnnealedHintAgent:
    model, tokenizer = load_policy(small_config.model)
    config = small_config.replace(algo="hints", steps=10, train_difficulties=(3,), hint_start=1.0)
    return AnnealedHintAgent(model, tokenizer, AnnealedHintAgent.fixed_at_start(config))


def test_the_hint_shrinks_from_its_start_share_to_none(hints):
    shares = [hints.hint_share(step) for step in range(1, 11)]
    assert 0.9 < shares[0] <= 1.0 and shares[-1] == pytest.approx(0.0)  # cosine from 1 at s = 0
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False)) and shares[4] < 0.6


def test_early_prompts_end_with_reference_steps_and_late_ones_do_not(hints):
    early = [e for group in hints.training_groups(1) for e in group]
    assert all(e.hint_length > 0 for e in early)  # level 3: three steps, a hint of 0.98 x 2 of them
    env = hints.envs.envs[0]
    for episode in early:
        steps = hints.envs.problems.get(episode.problem_id).solution_steps
        hint = hints.tokenizer.decode(episode.prompt_ids[-episode.hint_length :])
        assert hint in (f"{steps[0]}\n", f"{steps[0]}\n{steps[1]}\n")  # never the last step
    assert env.hint_steps(1.0) == 2
    batch = hints.pack(early)
    for row, episode in enumerate(early):  # target t is token t + 1: the hint's targets get no loss
        start = len(episode.prompt_ids) - episode.hint_length - 1
        assert not batch.loss_mask[row, start : len(episode.prompt_ids) - 1].any()
        assert batch.loss_mask[row].sum() == sum(episode.mask) > 0
    late = [e for group in hints.training_groups(10) for e in group]
    assert all(e.hint_length == 0 for e in late)


def test_a_schedule_that_is_not_one_is_one_line():
    with pytest.raises(SettingError, match="hint_schedule"):
        AnnealedHintAgent.Options(hint_schedule="sometimes")


def test_annealed_hints_train_and_log_the_hint(small_config):
    config = small_config.replace(algo="hints", steps=2, train_difficulties=(3,), hint_start=1.0)
    train(config, progress=False)
    log = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in log if "loss" in row]
    assert math.isfinite(rows[0]["loss"]) and rows[0]["hint_chars"] > rows[1]["hint_chars"] == 0
    assert json.loads((Path(config.out) / "config.json").read_text())["schedule_steps"] == 2
