"""The algorithms' losses as each computes them: exact values, which tokens get gradient, and the
direction of an update. Fast unit tests (a tiny random model at most), also the mutation tests' target."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from eapo_agents.algorithms.eapo import EAPOAgent, shaped_expert_term
from eapo_agents.algorithms.grpo import GRPOAgent, group_advantages
from eapo_agents.algorithms.policy_gradient import clipped_surrogate, k3_kl
from eapo_agents.algorithms.ppo import PPOAgent, gae, terminal_rewards
from eapo_agents.rollout.episode import Episode
from eapo_agents.training.batch import TokenBatch, loss_weights, pack_episodes, token_logprobs
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.policy import build_tiny_model
from eapo_gym.protocol import FeedbackSegment
from eapo_gym.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer()
# two rows: prompt, policy, expert reply, notice/tag (0 in both masks), policy again, padding
POLICY = torch.tensor([[0, 1, 1, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 0, 0, 0]], dtype=torch.float)
EXPERT = torch.tensor([[0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1, 0]], dtype=torch.float)


def agent(cls, **options):
    algo = {GRPOAgent: "grpo", EAPOAgent: "eapo", PPOAgent: "ppo"}[cls]
    config = TrainConfig(algo=algo, device="cpu").replace(**options)
    return cls(build_tiny_model(TOKENIZER, seed=0), TOKENIZER, config)


def inputs(advantages: torch.Tensor, **fields) -> TokenBatch:
    """Loss inputs over POLICY's positions (``objective`` reads no ids); pi_old = ``logp_leaf``."""
    ids = torch.zeros(POLICY.shape[0], POLICY.shape[1] + 1, dtype=torch.long)
    batch = TokenBatch(ids, torch.ones_like(ids), ids[:, 1:], POLICY, EXPERT, torch.zeros_like(POLICY))
    defaults = {
        "weights": loss_weights(POLICY),
        "share": loss_weights(POLICY),
        "old_logprobs": logp_leaf().detach(),
    }
    return dataclasses.replace(batch, advantages=advantages.expand_as(POLICY), **{**defaults, **fields})


def logp_leaf() -> torch.Tensor:
    return torch.log(torch.linspace(0.2, 0.8, POLICY.numel())).view_as(POLICY).requires_grad_()


@pytest.mark.parametrize("cls", [GRPOAgent, EAPOAgent])
def test_grpo_and_eapo_losses_give_gradient_to_policy_tokens_only(cls):
    logp = logp_leaf()
    loss, _ = agent(cls).objective(logp, inputs(torch.tensor([[1.0], [-0.5]])))
    loss.backward()
    assert torch.all(logp.grad[POLICY == 0] == 0)  # prompt, expert replies, notices: no gradient
    assert torch.all(logp.grad[POLICY == 1] != 0)


def test_the_kl_term_adds_beta_times_kl_to_the_loss():
    logp, ref = logp_leaf().detach(), torch.log(torch.full_like(POLICY, 0.5))
    advantages = torch.tensor([[1.0], [-0.5]])
    plain, _ = agent(GRPOAgent).objective(logp, inputs(advantages))
    loss, stats = agent(GRPOAgent, kl_beta=0.1).objective(logp, inputs(advantages, ref_logprobs=ref))
    assert stats["kl"] > 0 and loss == pytest.approx(plain + 0.1 * stats["kl"])


@pytest.mark.parametrize("overlong, trained", [("filter", False), ("none", True)])
def test_an_episode_cut_off_at_max_context_gets_no_loss_under_the_filter(overlong, trained):
    episodes = episodes_with_replies()
    episodes[0].info["cut_off"] = True
    batch = agent(GRPOAgent, overlong=overlong).pack(episodes)
    assert bool(batch.loss_mask[0].any()) == trained and batch.loss_mask[1].any()


def test_eapo_off_policy_term_reaches_expert_tokens_only_when_enabled():
    advantages = torch.tensor([[1.0], [-0.5]])
    expert = loss_weights(EXPERT) * advantages.clamp(min=0)
    logp = logp_leaf()
    loss, stats = agent(EAPOAgent, expert_token_coef=1.0).objective(
        logp, inputs(advantages, extras={"expert_weights": expert})
    )
    loss.backward()
    assert torch.all(logp.grad[0][EXPERT[0] == 1] != 0)  # row 0 beat its group: its replies are learned
    assert torch.all(logp.grad[1][EXPERT[1] == 1] == 0)  # row 1 did not: max(A, 0) = 0
    assert stats["expert_term"] > 0


def test_ppo_loss_gives_gradient_to_policy_tokens_only(monkeypatch):
    ppo = agent(PPOAgent)
    logp, values = logp_leaf(), torch.zeros_like(POLICY).requires_grad_()
    monkeypatch.setattr(ppo, "forward", lambda chunk: (logp, values))
    extras = {"old_values": torch.zeros_like(POLICY), "returns": torch.ones_like(POLICY)}
    chunk = inputs(torch.ones_like(POLICY), old_logprobs=logp.detach(), extras=extras)
    loss, _ = ppo.loss(chunk)
    loss.backward()
    for grad in (logp.grad, values.grad):
        assert torch.all(grad[POLICY == 0] == 0) and torch.all(grad[POLICY == 1] != 0)


def test_group_advantages_exact_with_and_without_scaling():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.1, 0.1, 0.1, 0.1], [1.0, 1.0, 0.1, 0.0]])
    scaled = group_advantages(rewards, scale=True)
    # group 0: mean 0.25, unbiased std 0.5; group 2: mean 0.525, std sqrt(0.309167)
    torch.testing.assert_close(scaled[0], torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-5, rtol=0)
    torch.testing.assert_close(scaled[1], torch.zeros(4))
    std = math.sqrt(((0.475**2) * 2 + 0.425**2 + 0.525**2) / 3)
    torch.testing.assert_close(
        scaled[2], torch.tensor([0.475, 0.475, -0.425, -0.525]) / std, atol=1e-5, rtol=0
    )
    unscaled = group_advantages(rewards, scale=False)
    torch.testing.assert_close(unscaled[0], torch.tensor([0.75, -0.25, -0.25, -0.25]))
    torch.testing.assert_close(unscaled[2], torch.tensor([0.475, 0.475, -0.425, -0.525]))


def test_clip_higher_is_asymmetric_and_exact():
    logp_old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5]))
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])
    surrogate, clipped = clipped_surrogate(logp, logp_old, advantages, clip_low=0.2, clip_high=0.28)
    torch.testing.assert_close(surrogate, torch.tensor([1.28, -1.5, 0.5, -0.8]))
    assert clipped.tolist() == [True, False, False, True]


def test_k3_kl_exact():
    logp = torch.log(torch.tensor([0.2, 0.5]))
    ref = torch.log(torch.tensor([0.4, 0.1]))
    expected = torch.tensor([2.0 - math.log(2.0) - 1, 0.2 - math.log(0.2) - 1])
    torch.testing.assert_close(k3_kl(logp, ref), expected)
    assert torch.all(k3_kl(logp, logp) == 0)


def test_shaped_expert_term_exact():
    logp = torch.log(torch.tensor([0.5, 0.1]))
    weights = torch.tensor([1.0, 2.0])
    expected = 0.5 / (0.5 + 0.1) * 1.0 + 0.1 / (0.1 + 0.1) * 2.0
    assert shaped_expert_term(logp, weights, gamma=0.1).item() == pytest.approx(expected)


def test_loss_weights_modes():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(loss_weights(mask, "token"), mask / 3)
    torch.testing.assert_close(
        loss_weights(mask, "sequence"), torch.tensor([[0.25, 0.25, 0.0], [0.5, 0.0, 0.0]])
    )
    torch.testing.assert_close(loss_weights(mask, "constant", constant=2), mask / 4)
    with pytest.raises(ValueError):
        loss_weights(mask, "mean")


def test_loss_weights_at_their_edges():
    one = torch.tensor([[0.0, 1.0, 0.0]])
    torch.testing.assert_close(loss_weights(one, "token"), one)  # a lone policy token weighs 1
    uneven = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(loss_weights(uneven, "constant", constant=3), uneven / 6)  # sequences x L
    with pytest.raises(ValueError, match="L >= 1"):
        loss_weights(uneven, "constant")
    torch.testing.assert_close(loss_weights(torch.zeros(2, 3), "sequence"), torch.zeros(2, 3))


def test_token_logprobs_divide_the_logits_by_the_temperature():
    logits = torch.randn(2, 4, 7, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(7, (2, 4), generator=torch.Generator().manual_seed(1))

    def expected(temperature: float) -> torch.Tensor:
        return (logits / temperature).log_softmax(-1).gather(-1, targets[..., None])[..., 0]

    torch.testing.assert_close(token_logprobs(logits, targets, 0.5), expected(0.5))
    torch.testing.assert_close(token_logprobs(logits, targets), expected(1.0))


def test_rows_and_cut_slice_every_field_by_its_declared_axis():
    """Per-position fields are cut to ``width``, per-target ones (loss inputs included) to
    ``width - 1``, whatever their shapes, and unset loss inputs stay unset."""
    width, cut, count = 6, 4, 3
    axes = {spec.name: spec.metadata["axis"] for spec in dataclasses.fields(TokenBatch)}
    values = {
        name: torch.arange(count * width).view(count, width)[:, : width if axis == "position" else width - 1]
        for name, axis in axes.items()
        if name not in ("ref_logprobs", "extras")
    }
    values["extras"] = {"returns": torch.arange(count * width).view(count, width)[:, : width - 1]}
    batch = TokenBatch(**values)
    index = torch.tensor([2, 0])
    short = batch.rows(index).cut(cut)
    assert set(axes.values()) == {"position", "target"} and short.ref_logprobs is None
    assert torch.equal(short.extras["returns"], values["extras"]["returns"][index, : cut - 1])
    for name, value in values.items():
        if name == "extras":
            continue
        length = cut if axes[name] == "position" else cut - 1
        assert torch.equal(getattr(short, name), value[index, :length]), name


def test_record_step_masks_feedback_and_marks_only_reply_text_as_expert():
    episode = Episode("p", [1, 2])
    episode.add_policy_tokens([3, 4])
    segments = [
        FeedbackSegment("tag", "\n<reply>"), FeedbackSegment("reply", "12+30=42"),
        FeedbackSegment("tag", "</reply>\n<reply>"), FeedbackSegment("notice", "Expert unavailable."),
        FeedbackSegment("tag", "</reply>"),
    ]  # fmt: skip
    episode.record_step((None, 0.0, False, False, {"feedback_segments": segments}), TOKENIZER)
    lengths = [len(TOKENIZER.encode(segment.text, add_special_tokens=False)) for segment in segments]
    expected = [
        int(segment.kind == "reply") for segment, n in zip(segments, lengths, strict=True) for _ in range(n)
    ]
    assert episode.mask == [1, 1] + [0] * sum(lengths)
    assert episode.expert_mask == [0, 0] + expected and sum(expected) == lengths[1] > 0


def test_gae_skips_expert_tokens_and_matches_hand_computation():
    # policy, expert, expert, policy, policy: the reward sits on the last policy token.
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0]])
    rewards = terminal_rewards(torch.tensor([1.0]), mask)
    assert rewards.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0]]
    values = torch.tensor([[0.5, 9.0, 9.0, 0.25, 0.75]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    a4 = 1.0 - 0.75
    a3 = (0.9 * 0.75 - 0.25) + 0.9 * 0.5 * a4
    a0 = (0.9 * 0.25 - 0.5) + 0.9 * 0.5 * a3  # the next policy state after token 0 is token 3
    torch.testing.assert_close(advantages, torch.tensor([[a0, 0.0, 0.0, a3, a4]]))
    torch.testing.assert_close(returns, torch.tensor([[a0 + 0.5, 0.0, 0.0, a3 + 0.25, a4 + 0.75]]))


def fixed_batch() -> TokenBatch:
    """Two different solved problems, prompts masked out."""
    episodes = []
    for prompt, solution in (
        ("12+30=?\n", "12+30=42\n<answer>42</answer>"),
        ("5+7+9=?\n", "5+7=12\n12+9=21\n"),
    ):
        episode = Episode("p", TOKENIZER.encode(prompt, add_special_tokens=False))
        episode.add_policy_tokens(TOKENIZER.encode(solution, add_special_tokens=False))
        episodes.append(episode)
    return pack_episodes(episodes, TOKENIZER.pad_token_id, torch.device("cpu"))


def current_logprobs(learner, batch: TokenBatch) -> torch.Tensor:
    """The learner's log-probabilities of ``batch`` before an update (pi_old)."""
    with torch.no_grad():
        return learner.logprobs(learner.model, batch)


def loss_inputs(batch: TokenBatch, advantages: torch.Tensor, old: torch.Tensor) -> TokenBatch:
    """``batch`` with per-episode ``advantages`` ([N, 1]) on its policy tokens and pi_old ``old``."""
    return dataclasses.replace(batch, advantages=advantages * batch.loss_mask, old_logprobs=old)


def test_an_update_aggregates_the_loss_as_configured():
    """Rows of different lengths: token-level (DAPO) and per-sequence (GRPO) means differ."""
    batch, advantages = fixed_batch(), torch.tensor([[1.0], [-1.0]])
    losses = {}
    for mode in ("token", "sequence"):
        learner = agent(GRPOAgent, loss_aggregation=mode, epochs_per_batch=1)
        inputs = loss_inputs(batch, advantages, current_logprobs(learner, batch))
        losses[mode] = learner.update(inputs, learner.loss)["loss"]
    assert losses["token"] != pytest.approx(losses["sequence"])


@pytest.mark.parametrize("cls", [GRPOAgent, PPOAgent])
def test_an_update_raises_positive_and_lowers_negative_advantage_tokens(cls):
    learner = agent(cls, lr=1e-4)
    batch = fixed_batch()
    before = learner.logprobs(learner.model, batch).detach()
    advantages = torch.tensor([[1.0], [-1.0]])
    inputs = loss_inputs(batch, advantages, before)
    if cls is PPOAgent:
        extras = {"old_values": torch.zeros_like(before), "returns": torch.zeros_like(before)}
        inputs = dataclasses.replace(inputs, extras=extras)
    learner.update(inputs, learner.loss)
    after = learner.logprobs(learner.model, batch).detach()
    change = ((after - before) * batch.loss_mask).sum(1)
    assert change[0] > 0 > change[1]


def test_kl_is_logged_and_positive_when_its_coefficient_is():
    learner = agent(GRPOAgent, kl_beta=0.1, epochs_per_batch=2, lr=1e-2)
    batch = fixed_batch()
    with torch.no_grad():
        ref = learner.logprobs(learner.reference, batch)
    inputs = loss_inputs(batch, torch.tensor([[1.0], [-1.0]]), ref)
    stats = learner.update(dataclasses.replace(inputs, ref_logprobs=ref), learner.loss)
    assert stats["kl"] > 0  # the second pass starts from an updated policy
    plain = agent(GRPOAgent)
    assert "kl" not in plain.update(inputs, plain.loss)


def episodes_with_replies() -> list[Episode]:
    """Policy turns around an expert reply and a notice, as rollouts record them."""
    episodes = []
    turns = [
        ("54+57+86=?\n", "<expert>What is 54+57?</expert>", "54+57=111", "111+86=197"),
        ("12+30+7=?\n", "<expert>What is 12+30?</expert>", "12+30=42", "42+7=49"),
    ]
    for prompt, ask, reply, rest in turns:
        episode = Episode("p", TOKENIZER.encode(prompt, add_special_tokens=False))
        episode.add_policy_tokens(TOKENIZER.encode(ask, add_special_tokens=False))
        episode.add_env_tokens(TOKENIZER.encode("\n<reply>", add_special_tokens=False))
        episode.add_env_tokens(TOKENIZER.encode(reply, add_special_tokens=False), expert=True)
        episode.add_env_tokens(TOKENIZER.encode("</reply>\n", add_special_tokens=False))
        episode.add_policy_tokens(
            TOKENIZER.encode(f"{rest}\n<answer>{rest[-3:]}</answer>", add_special_tokens=False)
        )
        episodes.append(episode)
    return episodes


def gradients(learner, batch: TokenBatch, monkeypatch) -> torch.Tensor:
    """The parameter gradient of one update on ``batch``, as the algorithm computes its loss."""
    captured = []

    def capture() -> float:
        captured.append(
            torch.cat([p.grad.flatten() for p in learner.model.parameters() if p.grad is not None])
        )
        learner.optimizer.zero_grad(set_to_none=True)
        return 0.0

    monkeypatch.setattr(learner, "apply_gradients", capture)
    old = current_logprobs(learner, batch)
    inputs = loss_inputs(batch, torch.tensor([[1.0], [-1.0]]), old)
    if isinstance(learner, PPOAgent):
        extras = {"old_values": torch.zeros_like(old), "returns": torch.ones_like(old)}
    else:
        extras = learner.loss_inputs(inputs, [])
    inputs = dataclasses.replace(inputs, extras=extras)
    learner.update(inputs, learner.loss)
    return captured[0]


@pytest.mark.parametrize(("cls", "options"), [(GRPOAgent, {}), (EAPOAgent, {}), (PPOAgent, {})])
def test_the_gradient_ignores_what_the_expert_wrote(cls, options, monkeypatch):
    """Replacing the expert reply's target tokens (inputs unchanged) leaves the update's gradient
    unchanged; replacing one policy target changes it (the test can tell)."""
    learner = agent(cls, **options)
    batch = learner.pack(episodes_with_replies())
    assert batch.expert_mask.sum() > 0 and (batch.expert_mask * batch.loss_mask).sum() == 0
    reference = gradients(learner, batch, monkeypatch)
    other = TOKENIZER.convert_tokens_to_ids("7")
    for positions, should_change in ((batch.expert_mask > 0, False), (batch.loss_mask.cumsum(1) == 1, True)):
        altered = dataclasses.replace(batch, targets=torch.where(positions, other, batch.targets))
        changed = not torch.allclose(gradients(learner, altered, monkeypatch), reference, atol=1e-7, rtol=0)
        assert changed == should_change


def test_an_episode_cut_off_gets_no_expert_token_term_either():
    """The overlong filter takes a cut-off episode out of the update entirely: with a positive
    advantage it would otherwise still learn its expert replies off-policy."""
    learner = agent(EAPOAgent, expert_token_coef=1.0)
    episodes = episodes_with_replies()
    episodes[0].info["cut_off"] = True
    batch = learner.pack(episodes)
    assert not batch.expert_mask[0].any() and batch.expert_mask[1].any()
    advantages = torch.ones_like(batch.loss_mask)
    inputs = learner.loss_inputs(dataclasses.replace(batch, advantages=advantages), episodes)
    expert = inputs["expert_weights"]
    assert not expert[0].any() and expert[1].any()


def test_constant_aggregation_divides_by_a_fixed_constant_not_the_longest_row():
    """Dr. GRPO: 1 / (sequences x L) with a fixed L, so a row's weights do not depend on how long
    the other rows of its batch are."""
    short = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    longer = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    torch.testing.assert_close(loss_weights(short, "constant", constant=8), short / 16)
    torch.testing.assert_close(
        loss_weights(short, "constant", constant=8)[0], loss_weights(longer, "constant", constant=8)[0]
    )
