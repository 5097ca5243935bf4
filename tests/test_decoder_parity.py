"""The rollout decoders against the model's own forward, across model family, dtype, LoRA and KV reuse.

Each case samples two turns (greedy, rows ending apart, feedback between the turns) through
``LocalBackend`` and compares every sampled token's log-probability with the model's own forward
over the whole unpadded sequence, in the same dtype. A model the fast decoder cannot run is
decoded by ``HFCacheDecoder`` with one ``DecoderFallbackWarning`` that says why: never silently.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from sampling_helpers import ScheduledEnds
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3NextConfig,
    Qwen3NextForCausalLM,
)

from eapo_agents.rollout.backend import SamplingConfig
from eapo_agents.rollout.decoding import DecoderFallbackWarning, StaticKVDecoder, drops_rows
from eapo_agents.rollout.sampling import LocalBackend
from eapo_agents.training.policy import add_lora, autocast, weights_dtype
from eapo_gym.protocol import TurnProtocol
from eapo_gym.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer()
SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 128}  # fmt: skip
MAX_NEW_TOKENS = 6
# the model and why the fast decoder declines it (None: it runs it)
FAMILIES = {
    "qwen2": (lambda v: Qwen2ForCausalLM(Qwen2Config(vocab_size=v, **SHAPE)), None),  # q/k/v biases
    "llama-biases": (
        lambda v: LlamaForCausalLM(LlamaConfig(vocab_size=v, mlp_bias=True, attention_bias=True, **SHAPE)),
        None,
    ),
    "mistral": (lambda v: MistralForCausalLM(MistralConfig(vocab_size=v, **SHAPE)), None),  # 4096 window
    "mistral-window": (
        lambda v: MistralForCausalLM(MistralConfig(vocab_size=v, sliding_window=8, **SHAPE)),
        "sliding window (8 tokens)",
    ),
    "qwen2-window": (
        lambda v: Qwen2ForCausalLM(
            Qwen2Config(vocab_size=v, use_sliding_window=True, sliding_window=8, max_window_layers=1, **SHAPE)
        ),
        "sliding window (8 tokens)",
    ),
    "gpt2": (
        lambda v: GPT2LMHeadModel(GPT2Config(vocab_size=v, n_embd=64, n_layer=2, n_head=4)),
        "model type 'gpt2'",
    ),
    # a hybrid: its cache's linear-attention layer cannot drop the rows that end early
    "qwen3-next-hybrid": (
        lambda v: Qwen3NextForCausalLM(
            Qwen3NextConfig(
                vocab_size=v, layer_types=["linear_attention", "full_attention"], head_dim=16,
                linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=16,
                linear_value_head_dim=16, num_experts=2, num_experts_per_tok=1, moe_intermediate_size=32,
                shared_expert_intermediate_size=32, **SHAPE,
            )
        ),
        "model type 'qwen3_next'",
    ),
}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
# the largest gap allowed between two log-probabilities of one token, per compute dtype
TOLERANCE = {"float32": 1e-4, "bfloat16": 0.08, "float16": 0.01}
# (family, dtype, LoRA, KV reuse): every family in every dtype, and LoRA and KV reuse crossed on Qwen2
CASES = [(family, dtype, False, True) for family in FAMILIES for dtype in TOLERANCE] + [
    ("qwen2", dtype, lora, kv_reuse)
    for dtype in TOLERANCE
    for lora, kv_reuse in ((True, True), (True, False), (False, False))
] + [("mistral-window", "bfloat16", True, True), ("llama-biases", "bfloat16", True, True)]


def family_model(family: str, dtype: str, lora: bool, device: str) -> torch.nn.Module:
    """A random-init model of ``family`` held as ``load_policy`` holds it for ``dtype`` (with LoRA whose
    B matrices are made non-zero, so the adapter changes the outputs)."""
    torch.manual_seed(0)
    model = FAMILIES[family][0](len(TOKENIZER))
    if family.startswith("llama"):  # Llama initialises its biases at zero: make them matter
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.endswith("bias"):
                    parameter.normal_(0, 0.5)
    model = model.to(device=device, dtype=weights_dtype(torch.device(device), dtype))
    if lora:
        model = add_lora(model, 4)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.2)
    return model.eval()


def two_turns(model, kv_reuse: bool, dtype: str) -> tuple[list[list[int]], list]:
    """Each turn's contexts and samples, for two turns (row r gets r feedback tokens between them),
    and the backend."""
    greedy = SamplingConfig(MAX_NEW_TOKENS, 0.0)
    backend = LocalBackend(model, TOKENIZER, TurnProtocol(), greedy, torch.Generator(), kv_reuse=kv_reuse)
    backend.stopper = ScheduledEnds([2, 6, 4, 1], [5, 3, 6, 2])
    contexts = [TOKENIZER.encode(text) for text in ("1+2=?\n", "33*4-5=?\n", "7=?\n", "100/7=?\n")]
    turns = []
    device = next(model.parameters()).device
    for _ in range(2):
        with autocast(device, dtype):
            samples = backend.generate(contexts, range(len(contexts)))
        turns.append((contexts, samples))
        contexts = [
            context + tokens + list(range(10, 10 + row))
            for row, (context, tokens) in enumerate(zip(contexts, samples.tokens, strict=True))
        ]
    return turns, backend


def assert_matches_the_models_forward(model, turns, dtype: str) -> None:
    device = next(model.parameters()).device
    for contexts, samples in turns:
        for context, tokens, logprobs in zip(contexts, samples.tokens, samples.logprobs, strict=True):
            ids = torch.tensor([context + tokens], device=device)
            with torch.no_grad(), autocast(device, dtype):
                logits = model(input_ids=ids).logits[0, len(context) - 1 : -1].float()
            expected = logits.log_softmax(-1).gather(-1, torch.tensor(tokens, device=device)[:, None])[:, 0]
            gap = (torch.tensor(logprobs, device=device) - expected).abs().max().item()
            assert gap <= TOLERANCE[dtype], f"log-probabilities differ by {gap:.2g} in {dtype}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("family", "dtype", "lora", "kv_reuse"), CASES)
def test_decoders_match_the_models_forward_or_say_why_not(family, dtype, lora, kv_reuse, device):
    model = family_model(family, dtype, lora, device)
    declined = FAMILIES[family][1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        turns, backend = two_turns(model, kv_reuse, dtype)
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, DecoderFallbackWarning)]
    if declined is None:
        assert not fallbacks and StaticKVDecoder.unsupported(model, 1024) is None
        assert (backend.episodes is not None) == kv_reuse
        if kv_reuse:  # the second turn ran on the first turn's cache
            assert set(backend.episodes.entries) == {0, 1, 2, 3}
    else:
        assert fallbacks and all(declined in message and "HFCacheDecoder" in message for message in fallbacks)
    assert [len(tokens) for tokens in turns[0][1].tokens] == [2, 6, 4, 1]
    assert_matches_the_models_forward(model, turns, dtype)


def test_the_fused_cpu_path_keeps_mlp_biases():
    """Llama with ``mlp_bias``: the CPU decoder's fused gate/up projection carries the biases."""
    model = family_model("llama-biases", "float32", lora=False, device="cpu")
    decoder = StaticKVDecoder(model, 1, 8)
    assert decoder.fused is not None
    (_, qkv_bias), (_, gate_up_bias) = decoder.fused[0]
    mlp = model.model.layers[0].mlp
    assert torch.equal(gate_up_bias, torch.cat([mlp.gate_proj.bias, mlp.up_proj.bias]))
    assert qkv_bias is not None
    turns, _ = two_turns(model, kv_reuse=True, dtype="float32")
    assert_matches_the_models_forward(model, turns, "float32")


def test_only_a_cache_of_keys_and_values_drops_rows():
    """``HFCacheDecoder.keep`` drops rows from such a cache only; a linear-attention layer lacks
    ``batch_select_indices`` or (a hybrid layer) would leave its conv and recurrent states behind."""
    from types import SimpleNamespace

    from transformers.cache_utils import (
        DynamicLayer,
        LinearAttentionAndFullAttentionLayer,
        LinearAttentionLayer,
    )

    assert drops_rows(SimpleNamespace(layers=[DynamicLayer(), DynamicLayer()]))
    assert not drops_rows(SimpleNamespace(layers=[DynamicLayer(), LinearAttentionLayer()]))
    assert hasattr(LinearAttentionAndFullAttentionLayer, "batch_select_indices")
    assert not drops_rows(SimpleNamespace(layers=[LinearAttentionAndFullAttentionLayer()]))
    assert not drops_rows((torch.zeros(1),))  # not a transformers cache: its rows stay
