"""Locked consultation: the query-open tag cannot be sampled, also when a subword tokenizer splits it."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from eapo_agents.rollout.backend import SamplingConfig
from eapo_agents.rollout.lock import QueryLock
from eapo_agents.rollout.sampling import TurnStopper, sample_turns
from eapo_agents.training.evaluation import evaluate
from eapo_agents.training.policy import load_policy
from eapo_gym.protocol import TurnProtocol

TAG = "<expert>"


def subword_tokenizer() -> PreTrainedTokenizerFast:
    """A BPE tokenizer trained here, small enough that ``<expert>`` is several tokens."""
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    corpus = ["<exp", "ert>", "<answer>12</answer>", "expert", "ask an expert", "12+30=42"] * 50
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<pad>", "<eos>", "<unk>"])
    core.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def model_favouring(token: int, vocab: int) -> Qwen2ForCausalLM:
    """A tiny model whose hidden state is the same vector for every input, and whose output head
    gives ``token`` a logit far above the others (the other tokens stay possible)."""
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, tie_word_embeddings=False)  # fmt: skip
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.ones(vocab, 32))
        model.model.layers[0].self_attn.o_proj.weight.zero_()
        model.model.layers[0].mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.weight[token] = 20.0
    return model


def test_the_tag_is_several_tokens_and_only_its_completion_is_banned():
    tokenizer = subword_tokenizer()
    tag_ids = tokenizer.encode(TAG, add_special_tokens=False)
    assert len(tag_ids) >= 2
    lock = QueryLock(tokenizer, TAG, len(tokenizer), torch.device("cpu"))
    prefix = tokenizer.encode("12+30=42", add_special_tokens=False)
    lock.start([prefix + tag_ids[:-1], prefix])
    banned = lock.banned()
    assert (
        banned[0, tag_ids[-1]] and not banned[1, tag_ids[-1]]
    )  # banned only where it would complete the tag
    assert banned.sum(1)[1] < len(tokenizer)  # most tokens stay allowed


def test_sampling_never_completes_a_multi_token_tag_when_locked():
    tokenizer = subword_tokenizer()
    tag_ids = tokenizer.encode(TAG, add_special_tokens=False)
    model = model_favouring(tag_ids[-1], len(tokenizer))
    prompts = [tokenizer.encode("12+30=42", add_special_tokens=False) + tag_ids[:-1]] * 16
    stopper = TurnStopper(tokenizer, TurnProtocol())
    sampling = SamplingConfig(6, temperature=1.0)
    free = sample_turns(
        model, prompts, stopper, sampling, tokenizer.pad_token_id, torch.Generator().manual_seed(0)
    )
    assert all(row[0] == tag_ids[-1] for row in free.tokens)  # unlocked, the model completes the tag
    lock = QueryLock(tokenizer, TAG, len(tokenizer), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    locked = sample_turns(model, prompts, stopper, sampling, tokenizer.pad_token_id, generator, lock)
    for prompt, row in zip(prompts, locked.tokens, strict=True):
        assert TAG not in tokenizer.decode(prompt + row)
        assert torch.isfinite(torch.tensor(locked.logprobs[0])).all()


def test_locked_evaluation_never_consults_and_declined_does(tiny_model_dir, small_config):
    model, tokenizer = load_policy(tiny_model_dir)
    config = small_config.replace(eval_difficulties=(2,), eval_problems=16, eval_k=2)
    declined = evaluate(model, tokenizer, config, consult="declined")
    locked = evaluate(model, tokenizer, config, consult="locked")
    assert declined["eval/consult_rate"] > 0.05  # the warm start asks on its own
    assert locked["eval/consult_rate"] == 0.0 and locked["eval/format_rate"] > 0.5
