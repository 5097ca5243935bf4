"""KV reuse across turns: ``LocalBackend`` keeps each episode's cache and runs only the new tokens."""

from __future__ import annotations

import pytest
import torch
from sampling_helpers import ScheduledEnds, tiny_model

from eapo_agents.rollout.backend import SamplingConfig
from eapo_agents.rollout.decoding import KVRows, StaticKVDecoder
from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.sampling import LocalBackend
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.environments import make_vector_env
from eapo_agents.training.policy import load_policy
from eapo_gym.protocol import TurnProtocol
from eapo_gym.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer()

PROMPTS = ("1+2=?\n", "33*4-5=?\n", "7=?\n", "8-9=?\n", "2*2=?\n", "100/7=?\n")
# per turn, the token at which each row's turn ends; 12 > max_new_tokens: cut at the limit
ENDS = [[3, 9, 1, 7, 12, 5], [2, 12, 6, 1, 4], [5, 1, 12, 3, 2]]


def backend(model, kv_reuse: bool, max_new_tokens: int = 10) -> LocalBackend:
    sampling = SamplingConfig(max_new_tokens, 0.0)
    return LocalBackend(model, TOKENIZER, TurnProtocol(), sampling, torch.Generator(), kv_reuse=kv_reuse)


def play_turns(generation: LocalBackend) -> list:
    """Three calls as a rollout makes them: each context grows by the turn and by feedback of a
    different length per row (none for one); after the first turn one episode leaves and the rest
    come back in another order."""
    generation.stopper = ScheduledEnds(*ENDS)
    feedback = torch.Generator().manual_seed(0)
    contexts, keys = [TOKENIZER.encode(text) for text in PROMPTS], list(range(len(PROMPTS)))
    turns = []
    for turn in range(3):
        samples = generation.generate(contexts, keys)
        turns.append(samples)
        lengths = torch.randint(0, 9, (len(keys),), generator=feedback).tolist()
        lengths[0] = 0
        contexts = [
            context + tokens + torch.randint(3, 90, (n,), generator=feedback).tolist()
            for context, tokens, n in zip(contexts, samples.tokens, lengths, strict=True)
        ]
        if turn == 0:
            order = [5, 0, 1, 3, 4]
            contexts, keys = [contexts[i] for i in order], order
    return turns


@pytest.mark.parametrize("name", ["qwen2", "llama-gqa", "gpt2"])
def test_kv_reuse_matches_a_full_re_prefill_over_turns(name, monkeypatch):
    model = tiny_model(name)
    widths = []
    prefill = StaticKVDecoder.prefill

    def recording_prefill(self, input_ids, attention_mask, past=None):
        widths.append((input_ids.shape[1], 0 if past is None else int(past.valid.sum(1).max())))
        return prefill(self, input_ids, attention_mask, past)

    monkeypatch.setattr(StaticKVDecoder, "prefill", recording_prefill)
    reused = play_turns(backend(model, kv_reuse=True))
    reuse_widths, widths[:] = widths[:], []
    full = play_turns(backend(model, kv_reuse=False))
    for ours, reference in zip(reused, full, strict=True):
        assert ours.tokens == reference.tokens and ours.stopped == reference.stopped
        for row, expected in zip(ours.logprobs, reference.logprobs, strict=True):
            torch.testing.assert_close(torch.tensor(row), torch.tensor(expected), atol=1e-5, rtol=1e-5)
    assert [len(t) for t in reused[0].tokens] == [3, 9, 1, 7, 10, 5]  # rows end apart: compaction runs
    if name == "gpt2":  # HFCacheDecoder does not reuse: every turn runs its whole contexts
        assert backend(model, kv_reuse=True).episodes is None and not reuse_widths
        return
    # later turns run only the last sampled token and the feedback (at most 1 + 8 tokens) ...
    assert reuse_widths[0][1] == 0 and all(width <= 9 for width, _ in reuse_widths[1:])
    # ... after the cached ones, while the re-prefill runs everything
    assert all(cached > 0 for _, cached in reuse_widths[1:]) and min(w for w, _ in widths[1:]) > 9


def test_kv_reuse_falls_back_and_forgets():
    model = tiny_model("qwen2")
    generation, reference = backend(model, kv_reuse=True, max_new_tokens=6), backend(model, False, 6)
    contexts = [TOKENIZER.encode(text) for text in PROMPTS[:4]]
    first = generation.generate(contexts, keys=range(4))
    assert set(generation.episodes.entries) == {0, 1, 2, 3}
    # the same keys with contexts that do not continue the cached ones (a new rollout batch), and new keys
    fresh = [TOKENIZER.encode(text) for text in ("9+9=?\n", "1=?\n", "4*5=?\n")]
    assert generation.generate(fresh, keys=[0, 7, 8]).tokens == reference.generate(fresh, [0, 7, 8]).tokens
    assert set(generation.episodes.entries) == {0, 7, 8}  # keys 1-3 no longer came: forgotten
    assert generation.episodes.rows.keys.shape[1] == 3
    # the weights change in place (an optimizer step): nothing cached is reused
    generation.generate(contexts, keys=range(4))
    continued = [c + t + [5] for c, t in zip(contexts, first.tokens, strict=True)]
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(1.5)
    ours, expected = generation.generate(continued, range(4)), reference.generate(continued, range(4))
    for row, reference_row in zip(ours.logprobs, expected.logprobs, strict=True):
        torch.testing.assert_close(torch.tensor(row), torch.tensor(reference_row), atol=1e-5, rtol=1e-5)
    # many rollout batches: the cache holds the last call's rows only, so it never grows
    for batch in range(5):
        prompts = [TOKENIZER.encode(f"{batch}+{row}=?\n") for row in range(4)]
        samples = generation.generate(prompts, range(4))
        longer = [p + t + [7, 8] for p, t in zip(prompts, samples.tokens, strict=True)]
        generation.generate(longer, range(4))
        assert generation.episodes.rows.keys.shape[1] == 4
        assert generation.episodes.rows.valid.shape[1] < 2 * max(len(c) for c in longer) + 6


def test_a_turn_with_no_feedback_reuses_the_cache_one_token_per_row():
    """Every row's context grows by its turn alone, so the next call prefills one token per row."""
    model = tiny_model("qwen2")
    turns = {}
    for kv_reuse in (True, False):
        generation = backend(model, kv_reuse)
        generation.stopper = ScheduledEnds([3, 2, 4], [2, 5, 1])
        contexts, keys = [TOKENIZER.encode(text) for text in PROMPTS[:3]], [0, 1, 2]
        first = generation.generate(contexts, keys)
        contexts = [context + tokens for context, tokens in zip(contexts, first.tokens, strict=True)]
        turns[kv_reuse] = (first.tokens, generation.generate(contexts, keys).tokens)
    assert turns[True] == turns[False]


def test_select_packs_each_rows_tokens_at_the_right_end():
    keys = torch.arange(2 * 5, dtype=torch.float).view(1, 2, 1, 5, 1)
    valid = torch.tensor([[True, False, True, False, True], [False, True, False, False, False]])
    packed = KVRows(keys, -keys, valid).select(torch.tensor([1, -1, 0]))
    assert packed.valid.tolist() == [[False, False, True], [False, False, False], [True, True, True]]
    assert packed.keys[0, 0, 0, 2, 0] == 6 and packed.keys[0, 2, 0, :, 0].tolist() == [0, 2, 4]
    assert torch.equal(packed.values, -packed.keys)


def test_kv_reuse_plays_the_same_episodes(tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir)
    envs = make_vector_env(TrainConfig(), 16, "train", (3,), 1.0)  # the shipped policy consults at level 3
    played = {}
    for kv_reuse in (True, False):
        sampling = SamplingConfig(48, 0.0)
        generation = LocalBackend(
            model, tokenizer, envs.protocol, sampling, torch.Generator(), kv_reuse=kv_reuse
        )
        played[kv_reuse] = play_episodes(generation, tokenizer, envs, seeds=list(range(16)))
    assert max(e.info["turns"] for e in played[True]) >= 2, "the warm-started policy should consult"
    for ours, reference in zip(played[True], played[False], strict=True):
        assert ours.completion_ids == reference.completion_ids and ours.mask == reference.mask
        assert ours.reward == reference.reward and ours.info == reference.info
        torch.testing.assert_close(
            torch.tensor(ours.sample_logprobs), torch.tensor(reference.sample_logprobs), atol=1e-5, rtol=1e-5
        )
