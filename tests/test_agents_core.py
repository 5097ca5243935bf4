"""The shared agent core: decoders, turn sampling, multi-turn rollouts and loss masks."""

from __future__ import annotations

import pytest
import torch
from sampling_helpers import MODELS, ScheduledEnds, tiny_model

from eapo_agents.rollout.backend import SamplingConfig
from eapo_agents.rollout.decoding import HFCacheDecoder, StaticKVDecoder, make_decoder, positions_from_mask
from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.sampling import LocalBackend, TurnStopper, sample_turns
from eapo_agents.training.batch import pack_episodes, policy_logprobs
from eapo_agents.training.policy import build_tiny_model, load_policy
from eapo_gym.protocol import TurnProtocol
from eapo_gym.tokenizer import load_tokenizer
from eapo_gym.vector import ExpertMathVectorEnv

TOKENIZER = load_tokenizer()


def tiny_models():
    return {name: tiny_model(name) for name in MODELS}


@pytest.mark.parametrize("name", ["qwen2", "llama-gqa", "gpt2"])
def test_incremental_decoding_matches_a_full_forward_with_left_padding(name):
    torch.manual_seed(0)
    model = tiny_models()[name]
    prompts = torch.randint(3, 90, (3, 6))
    mask = torch.ones_like(prompts)
    mask[0, :2] = 0
    mask[2, :5] = 0
    steps = torch.randint(3, 90, (3, 4))
    decoder = make_decoder(model, 3, 10)
    assert isinstance(decoder, HFCacheDecoder if name == "gpt2" else StaticKVDecoder)
    with torch.no_grad():
        incremental = [decoder.prefill(prompts, mask)] + [decoder.step(steps[:, t]) for t in range(4)]
        full_ids = torch.cat([prompts, steps], 1)
        full_mask = torch.cat([mask, torch.ones_like(steps)], 1)
        reference = model(
            input_ids=full_ids, attention_mask=full_mask, position_ids=positions_from_mask(full_mask)
        ).logits.float()
    for t, logits in enumerate(incremental):
        torch.testing.assert_close(logits, reference[:, 5 + t], atol=2e-4, rtol=1e-4)


def test_sampler_stops_each_row_at_its_own_end():
    protocol = TurnProtocol(max_queries=2)
    stopper = TurnStopper(TOKENIZER, protocol)
    ids = {tag: TOKENIZER.convert_tokens_to_ids(tag) for tag in protocol.tags}
    stopper.start(4, torch.device("cpu"))
    sequence = [
        [ids["<answer>"], 10, 10, 10],
        [ids["</answer>"], 10, 10, 10],
        [ids["</expert>"], 10, ids["</expert>"], 10],
        [10, TOKENIZER.eos_token_id, 10, 10],
    ]
    ended_at = [None] * 4
    for t in range(4):
        done = stopper.update(torch.tensor([row[t] for row in sequence]))
        for row in range(4):
            if done[row] and ended_at[row] is None:
                ended_at[row] = t
    # row 0 never closes its answer; row 1's stray </answer> does not end it; row 2 ends at the 2nd query.
    assert ended_at == [None, None, 2, 1]


def spelled(*parts: str) -> list[int]:
    """Token ids: a part in ``[...]`` is the tag token, any other part one token per character."""
    tokens = [[part[1:-1]] if part.startswith("[") else list(part) for part in parts]
    return TOKENIZER.convert_tokens_to_ids([token for part in tokens for token in part])


@pytest.mark.parametrize(
    "parts",
    [
        ("<answer>7</answer>",),  # every tag spelled out
        ("[<answer>]", "7</answer>"),
        ("<answer>7", "[</answer>]"),
        ("</answer> <answer>7</answer>",),  # a stray close first
        ("<expert>a?</expert>", "<expert>b?", "[</expert>]"),  # the second of two queries
        ("<expert>a?", "[</expert>]", "<expert>b?</expert>"),
    ],
)
def test_the_stopper_ends_a_turn_where_the_token_mode_environment_does(parts):
    """Tags written as one token or character by character: the environment (token mode) ends the
    turn at a token, and the sampler's stopper ends it at the same one."""
    import gymnasium as gym

    import eapo_gym  # noqa: F401  (registers the environment)

    tokens = spelled(*parts)
    assert len(tokens) > len(parts) + 2  # some tag really was spelled out
    env = gym.make("EAPOMath-v0", action_mode="token", max_queries=2, problems="arithmetic", difficulty=1)
    env.reset(seed=0)
    environment_end = next(
        t for t, token in enumerate(tokens) if (lambda out: out[2] or out[4]["turns"] == 1)(env.step(token))
    )
    stopper = TurnStopper(TOKENIZER, TurnProtocol(max_queries=2))
    stopper.start(1, torch.device("cpu"))
    stopper_end = next(t for t, token in enumerate(tokens) if stopper.update(torch.tensor([token]))[0])
    assert stopper_end == environment_end == len(tokens) - 1


def test_sampled_logprobs_match_a_training_forward_and_greedy_is_deterministic():
    model = build_tiny_model(TOKENIZER, seed=3).eval()
    stopper = TurnStopper(TOKENIZER, TurnProtocol())
    prompts = [TOKENIZER.encode("12+34=?\n"), TOKENIZER.encode("5+6+7=?\n")]
    generator = torch.Generator().manual_seed(0)
    samples = sample_turns(
        model, prompts, stopper, SamplingConfig(12, 0.7, 0.9), TOKENIZER.pad_token_id, generator
    )
    for prompt, tokens, logprobs in zip(prompts, samples.tokens, samples.logprobs, strict=True):
        ids = torch.tensor([prompt + tokens])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float() / 0.7
        expected = logits.log_softmax(-1).gather(-1, torch.tensor(tokens)[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(logprobs), expected, atol=1e-4, rtol=1e-4)
    greedy = SamplingConfig(8, 0.0)
    first = sample_turns(model, prompts, stopper, greedy, TOKENIZER.pad_token_id)
    assert first.tokens == sample_turns(model, prompts, stopper, greedy, TOKENIZER.pad_token_id).tokens


@pytest.mark.parametrize("name", ["qwen2", "llama-gqa", "gpt2"])
def test_dropping_finished_rows_changes_no_sample(name, monkeypatch):
    model = tiny_models()[name]
    prompts = [TOKENIZER.encode(text) for text in ("1+2=?\n", "33*4-5=?\n", "7=?\n", "8-9=?\n", "2*2=?\n")]
    ends = [3, 10, 1, 7, 12]  # row 1 ends on the last allowed token, row 4 never
    greedy = SamplingConfig(10, 0.0)
    compacted = sample_turns(model, prompts, ScheduledEnds(ends), greedy, TOKENIZER.pad_token_id)
    monkeypatch.setattr("eapo_agents.rollout.sampling.COMPACT_SHARE", float("inf"))
    full = sample_turns(model, prompts, ScheduledEnds(ends), greedy, TOKENIZER.pad_token_id)
    assert [len(t) for t in compacted.tokens] == [3, 10, 1, 7, 10]
    assert compacted.stopped == [True, True, True, True, False]
    assert compacted.tokens == full.tokens
    for ours, reference in zip(compacted.logprobs, full.logprobs, strict=True):
        torch.testing.assert_close(torch.tensor(ours), torch.tensor(reference), atol=1e-5, rtol=1e-5)


def test_rollout_masks_exactly_the_injected_tokens_and_never_retokenizes(tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir)
    vector = ExpertMathVectorEnv(
        16, problems="arithmetic", difficulty=2, prompt_template="{question}\n", instructions=""
    )
    backend = LocalBackend(
        model, tokenizer, vector.protocol, SamplingConfig(48), torch.Generator().manual_seed(0)
    )
    episodes = play_episodes(backend, tokenizer, vector, seeds=list(range(16)))
    envs = vector.envs
    consulted = [(e, env) for e, env in zip(episodes, envs, strict=True) if e.info["accepted"] > 0]
    assert consulted, "the warm-started policy should consult at least once in 16 episodes"
    for episode, env in zip(episodes, envs, strict=True):
        assert len(episode.mask) == len(episode.completion_ids) == len(episode.sample_logprobs)
        text = tokenizer.decode(episode.context, skip_special_tokens=True)
        assert text == env.transcript  # ids concatenated turn by turn decode to the env's transcript
        injected = tokenizer.decode(
            [t for t, m in zip(episode.completion_ids, episode.mask, strict=True) if not m]
        )
        assert injected.count("<reply>") == episode.info["consults"]  # one reply block per query
    reply_id = tokenizer.convert_tokens_to_ids("<reply>")

    def own_tokens(e):
        return [t for t, m in zip(e.completion_ids, e.mask, strict=True) if m]

    # the policy may imitate reply tags itself; check one whose own tokens hold none
    episode, env = next((e, env) for e, env in consulted if reply_id not in own_tokens(e))
    batch = pack_episodes([episode], tokenizer.pad_token_id, torch.device("cpu"))
    targets = batch.targets[0][batch.loss_mask[0] > 0].tolist()
    assert reply_id not in targets
    injected = [t for t, m in zip(episode.completion_ids, episode.mask, strict=True) if not m]
    assert f"<reply>{env.problem.solution_steps[0]}</reply>" in tokenizer.decode(injected)
    with torch.no_grad():
        logprobs = policy_logprobs(model, batch)[0][batch.loss_mask[0] > 0]
    sampled = torch.tensor([lp for lp, m in zip(episode.sample_logprobs, episode.mask, strict=True) if m])
    torch.testing.assert_close(logprobs, sampled, atol=1e-4, rtol=1e-4)


def test_inverse_cdf_sampling_follows_the_distribution_and_skips_zero_mass():
    from eapo_agents.rollout.sampling import _inverse_cdf_sample

    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3]]).repeat(20000, 1)
    draws = _inverse_cdf_sample(probs, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    assert frequencies[0] == 0 and frequencies[2] == 0
    torch.testing.assert_close(frequencies, probs[0], atol=0.015, rtol=0)
