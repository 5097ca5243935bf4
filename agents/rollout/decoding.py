"""Incremental decoders: prefill a left-padded batch, then one token per call; ``keep`` drops rows.

``StaticKVDecoder`` runs Llama-family models (Qwen2, Llama, Mistral) with a
preallocated KV cache and a minimal forward built from the model's own modules;
it is several times lighter per step than ``model.generate`` at small sizes.
It can also carry a batch's cache from one run to the next (``KVRows``): the
prefill then appends each row's new tokens after its cached ones.
``HFCacheDecoder`` serves every other ``AutoModelForCausalLM`` through the
model's forward and its own cache. ``make_decoder`` picks one.

What each supports (``StaticKVDecoder.unsupported`` says why it declines a model):

| | ``StaticKVDecoder`` | ``HFCacheDecoder`` |
|---|---|---|
| families | ``qwen2``, ``llama``, ``mistral`` (``model.model.rotary_emb``) | any causal LM |
| biases | attention and MLP (``attention_bias``, ``mlp_bias``) | the model's |
| sliding window | only one no sequence reaches (``window >= positions``) | the model's |
| dtypes | float32, bfloat16, float16 (softmax and norms in float32) | the model's |
| peft LoRA | yes (the adapted modules are called) | yes |
| KV reuse across turns | yes (``KVRows``) | no |
| hybrid linear attention | no | yes (finished rows decoded to the end: ``drops_rows``) |

Falling back to ``HFCacheDecoder`` warns once per reason (``DecoderFallbackWarning``).
On the CPU, plain ``nn.Linear`` projections are fused (``_fused_projections``).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

STATIC_CACHE_MODEL_TYPES = ("qwen2", "llama", "mistral")
Projection = tuple[torch.Tensor, torch.Tensor | None]  # a fused weight and its bias


class DecoderFallbackWarning(UserWarning):
    """A model is decoded by ``HFCacheDecoder`` (slower, no KV reuse) because ``StaticKVDecoder``
    does not support it; the message says why."""


def causal_lm(model: nn.Module) -> nn.Module:
    """The ``*ForCausalLM`` inside a peft wrapper (its LoRA layers stay in place), or ``model``."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def attention_window(config) -> int | None:
    """The sliding window that some layer attends within, or None (full attention everywhere)."""
    window = getattr(config, "sliding_window", None)
    if window is None or getattr(config, "use_sliding_window", True) is False:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return window


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class KVRows:
    """A batch's cached keys and values, ``[layers, rows, kv_heads, columns, head_dim]``, kept between
    decoder runs. ``valid[r, c]`` marks the columns that hold row r's tokens, in order (holes allowed)."""

    keys: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor

    def select(self, rows: torch.Tensor) -> KVRows:
        """Rows ``rows`` in that order (-1: an empty row), each row's tokens packed at the right end."""
        source = rows.clamp(min=0)
        valid = self.valid[source] & (rows >= 0)[:, None]
        width = int(valid.sum(1).max())
        # a stable sort puts each row's holes first and its tokens last, in order
        columns = valid.to(torch.uint8).argsort(dim=1, stable=True)[:, valid.shape[1] - width :]
        return KVRows(
            self.keys[:, source[:, None], :, columns].permute(2, 0, 3, 1, 4),
            self.values[:, source[:, None], :, columns].permute(2, 0, 3, 1, 4),
            valid.gather(1, columns),
        )


class StaticKVDecoder:
    """Prefill + single-token steps over a preallocated KV cache (Llama-family models).

    With ``park``, the buffers allocated here keep every batch row's cache to the end:
    a row that ``keep`` drops leaves its columns there, and ``turn_cache`` returns them all.
    """

    def __init__(self, model: nn.Module, batch_size: int, max_length: int, park: bool = False) -> None:
        model = causal_lm(model)
        config = model.config
        self.model = model
        self.layers = model.model.layers
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        parameter = next(model.parameters())
        shape = (len(self.layers), batch_size, self.kv_heads, max_length, self.head_dim)
        self.keys = torch.zeros(shape, dtype=parameter.dtype, device=parameter.device)
        self.values = torch.zeros_like(self.keys)
        # 0 where a key may be attended to, -inf at padding and at positions not yet written
        self.key_bias = torch.full(
            (batch_size, max_length), float("-inf"), dtype=parameter.dtype, device=parameter.device
        )
        positions = torch.arange(max_length, device=parameter.device)[None]
        cos, sin = model.model.rotary_emb(self.keys[0, :1, 0], positions)
        half = self.head_dim // 2
        # rotate_half(x) * sin == x.roll(half) * [-sin_1, sin_2]: one op instead of three
        self.cos, self.sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], -1)
        self.length = 0
        self.next_position = torch.zeros(batch_size, dtype=torch.long, device=parameter.device)
        self.parked = (self.keys, self.values) if park else None
        self.slots = torch.arange(batch_size, device=parameter.device)  # each decoder row's batch row
        self.synced = 0  # columns before this are in the parked buffers for every batch row
        self.fused = None
        if parameter.device.type == "cpu" and all(map(_plain_projections, self.layers)):
            self.fused = [_fused_projections(layer) for layer in self.layers]
            self.output_weight = _fold_norm(model.lm_head.weight, model.model.norm.weight)

    @staticmethod
    def unsupported(model: nn.Module, positions: int) -> str | None:
        """Why this decoder cannot run ``model`` over sequences of up to ``positions`` tokens, or None."""
        model = causal_lm(model)
        config = model.config
        if config.model_type not in STATIC_CACHE_MODEL_TYPES:
            return f"model type {config.model_type!r} is not one of {', '.join(STATIC_CACHE_MODEL_TYPES)}"
        if not hasattr(getattr(model, "model", None), "rotary_emb"):
            return f"{type(model).__name__} has no model.rotary_emb"
        window = attention_window(config)
        if window is not None and window < positions:
            return f"its sliding window ({window} tokens) is shorter than the sequences ({positions} tokens)"
        return None

    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, past: KVRows | None = None
    ) -> torch.Tensor:
        """Run the prompt (row r continues ``past``'s row r); return the last position's logits [B, V]."""
        length = input_ids.shape[1]
        mask = attention_mask.bool()
        positions = positions_from_mask(mask)
        causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
        # Pad queries may attend to themselves, so no row is fully masked (their output is unused).
        attend = (causal & mask[:, None, :]) | torch.eye(length, dtype=torch.bool, device=mask.device)
        start = 0
        if past is not None:
            start = past.valid.shape[1]
            self.keys[:, :, :, :start], self.values[:, :, :, :start] = past.keys, past.values
            self.key_bias[:, :start] = torch.where(past.valid, 0.0, float("-inf"))
            positions = positions + past.valid.sum(1, keepdim=True)
            attend = torch.cat([past.valid[:, None].expand(-1, length, -1), attend], -1)
        self.key_bias[:, start : start + length] = torch.where(mask, 0.0, float("-inf"))
        self.length = start + length
        if self.parked is not None:
            self.prompt_valid = self.key_bias[:, : self.length] == 0
        self.next_position = positions[:, -1] + 1
        hidden = self._forward(input_ids, self.cos[positions], self.sin[positions], attend[:, None], start)
        return self._logits(hidden[:, -1])

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; return the next logits ``[B, V]``."""
        at = self.length
        self.key_bias[:, at] = 0.0
        positions = self.next_position[:, None]
        # one bias row per (row, kv head), shared by the query heads of its group
        bias = self.key_bias[:, None, : at + 1].expand(-1, self.kv_heads, -1).reshape(-1, 1, at + 1)
        hidden = self._forward(tokens[:, None], self.cos[positions], self.sin[positions], bias, at)
        self.length += 1
        self.next_position = self.next_position + 1
        return self._logits(hidden[:, -1])

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only decoder rows ``rows`` (drop finished sequences from later steps)."""
        if self.parked is not None:
            self._park()
            self.slots = self.slots[rows]
        self.keys, self.values = self.keys[:, rows], self.values[:, rows]
        self.key_bias, self.next_position = self.key_bias[rows], self.next_position[rows]

    def turn_cache(self, fed: torch.Tensor) -> KVRows:
        """Every batch row's cache (``park`` only), in batch order: its prompt columns and the first
        ``fed[r]`` tokens it generated (the tokens fed back through ``step``)."""
        self._park()
        keys, values = self.parked
        generated = torch.arange(keys.shape[3] - self.prompt_valid.shape[1], device=fed.device)
        return KVRows(keys, values, torch.cat([self.prompt_valid, generated < fed[:, None]], 1))

    def _park(self) -> None:
        """Copy the current rows' columns written since the last call into the parked buffers."""
        keys, values = self.parked
        if self.keys is not keys:
            columns = slice(self.synced, self.length)
            keys[:, self.slots, :, columns] = self.keys[:, :, :, columns]
            values[:, self.slots, :, columns] = self.values[:, :, :, columns]
        self.synced = self.length

    def _forward(self, ids, cos, sin, attend, start: int) -> torch.Tensor:
        """``attend``: a boolean mask [B, 1, L, L] (prompt) or an additive bias [B * KV, 1, L] (one token)."""
        batch, length = ids.shape
        heads, kv_heads = self.heads, self.kv_heads
        hidden = self.model.model.embed_tokens(ids)
        cos, sin = cos[:, :, None], sin[:, :, None]
        end = start + length
        for index, layer in enumerate(self.layers):
            qkv = self._qkv(index, layer, hidden).view(batch, length, heads + 2 * kv_heads, self.head_dim)
            rotary = qkv[:, :, : heads + kv_heads]
            rotary = rotary * cos + rotary.roll(self.head_dim // 2, -1) * sin
            query = rotary[:, :, :heads].transpose(1, 2)
            self.keys[index, :, :, start:end] = rotary[:, :, heads:].transpose(1, 2)
            self.values[index, :, :, start:end] = qkv[:, :, heads + kv_heads :].transpose(1, 2)
            keys, values = self.keys[index, :, :, :end], self.values[index, :, :, :end]
            if attend.dtype != torch.bool:  # one new token per row: ``step``'s additive bias
                context = self._attend_one(query, keys, values, attend)
            else:
                context = F.scaled_dot_product_attention(
                    query, keys, values, attn_mask=attend, enable_gqa=heads != kv_heads
                )
            hidden = hidden + layer.self_attn.o_proj(context.transpose(1, 2).reshape(batch, length, -1))
            hidden = hidden + self._mlp(index, layer, hidden)
        return hidden

    def _qkv(self, index: int, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """[q | k | v] projections of the normed hidden states."""
        if self.fused is None:
            normed = _rms_norm(layer.input_layernorm, hidden)
            attention = layer.self_attn
            return torch.cat(
                [attention.q_proj(normed), attention.k_proj(normed), attention.v_proj(normed)], -1
            )
        weight, bias = self.fused[index][0]
        return F.linear(_unit_rms(layer.input_layernorm, hidden), weight, bias)

    def _mlp(self, index: int, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if self.fused is None:
            return layer.mlp(_rms_norm(layer.post_attention_layernorm, hidden))
        weight, bias = self.fused[index][1]
        gate, up = F.linear(_unit_rms(layer.post_attention_layernorm, hidden), weight, bias).chunk(2, -1)
        return layer.mlp.down_proj(layer.mlp.act_fn(gate) * up)

    def _attend_one(self, query, keys, values, bias) -> torch.Tensor:
        """softmax(q k^T / sqrt(d) + bias) v for one query per row, as two batched products over
        (row, kv head) pairs: fewer, larger ops than SDPA on CPU. The softmax runs in float32."""
        batch, group = query.shape[0], self.heads // self.kv_heads
        grouped = query.reshape(batch * self.kv_heads, group, self.head_dim)
        keys = keys.reshape(batch * self.kv_heads, -1, self.head_dim)
        scores = torch.baddbmm(bias, grouped, keys.transpose(1, 2), alpha=self.head_dim**-0.5)
        weights = scores.softmax(-1, dtype=torch.float32).to(values.dtype)
        context = torch.bmm(weights, values.reshape(batch * self.kv_heads, -1, self.head_dim))
        return context.view(batch, self.heads, 1, self.head_dim)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.fused is None:
            return self.model.lm_head(_rms_norm(self.model.model.norm, hidden)).float()
        normed = _unit_rms(self.model.model.norm, hidden)
        return F.linear(normed, self.output_weight, self.model.lm_head.bias).float()


def drops_rows(cache) -> bool:
    """Whether ``cache.batch_select_indices`` drops rows from everything ``cache`` holds: a transformers
    cache whose layers hold keys and values only. A linear-attention layer's conv and recurrent states
    (hybrid models: Qwen3-Next, LFM2) have no such method or are left at the old rows."""
    layers = getattr(cache, "layers", None)
    return layers is not None and all(
        hasattr(layer, "batch_select_indices")
        and not hasattr(layer, "conv_states")
        and not hasattr(layer, "recurrent_states")
        for layer in layers
    )


class HFCacheDecoder:
    """The same interface over any causal LM's own forward and cache. ``keep`` drops rows from a cache
    that can drop them (``drops_rows``); any other cache keeps every row, the dropped ones fed a pad
    token and left out of the logits (correct, at the cost of computing them to the end)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        parameters = inspect.signature(model.forward).parameters
        self.cache_keyword = "cache" if "cache" in parameters else "past_key_values"
        self.cache = None
        self.rows: torch.Tensor | None = None  # the cache rows still decoded, when the cache keeps all

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.mask = attention_mask.long()
        positions = positions_from_mask(self.mask)
        self.next_position = positions[:, -1] + 1
        output = self.model(
            input_ids=input_ids, attention_mask=self.mask, position_ids=positions, use_cache=True
        )
        self.cache = output.past_key_values
        return output.logits[:, -1].float()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.rows is not None:
            tokens = tokens.new_zeros(len(self.mask)).index_copy(0, self.rows, tokens)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        output = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.next_position[:, None],
            use_cache=True,
            **{self.cache_keyword: self.cache},
        )
        self.cache = output.past_key_values
        self.next_position = self.next_position + 1
        logits = output.logits[:, -1].float()
        return logits if self.rows is None else logits[self.rows]

    def keep(self, rows: torch.Tensor) -> None:
        if drops_rows(self.cache):
            self.cache.batch_select_indices(rows)
            self.mask, self.next_position = self.mask[rows], self.next_position[rows]
        else:
            self.rows = rows if self.rows is None else self.rows[rows]


def make_decoder(model: nn.Module, batch_size: int, max_length: int) -> StaticKVDecoder | HFCacheDecoder:
    """The fastest decoder that supports ``model``: ``StaticKVDecoder``, else ``HFCacheDecoder`` with a
    ``DecoderFallbackWarning`` that says why (shown once per reason)."""
    reason = StaticKVDecoder.unsupported(model, max_length)
    if reason is None:
        return StaticKVDecoder(model, batch_size, max_length)
    message = f"decoding with the model's own forward (HFCacheDecoder: slower, no KV reuse): {reason}"
    warnings.warn(message, DecoderFallbackWarning, stacklevel=2)
    return HFCacheDecoder(model)


def _plain_projections(layer: nn.Module) -> bool:
    """Whether every projection of ``layer`` is a plain ``nn.Linear`` (no adapter), so it can be fused."""
    attention, mlp = layer.self_attn, layer.mlp
    projections = (attention.q_proj, attention.k_proj, attention.v_proj, mlp.gate_proj, mlp.up_proj)
    return all(type(p) is nn.Linear for p in projections)


def _fused_projections(layer: nn.Module) -> tuple[Projection, Projection]:
    """One projection for q/k/v and one for gate/up, each with its RMSNorm's weight folded in
    (W (g * x) = (W g) x): on CPU, where per-op overhead dominates small models, two matmuls
    instead of five per layer and no norm multiply. Copied once per decoder (per rollout batch)."""
    attention, mlp = layer.self_attn, layer.mlp
    qkv, gate_up = (attention.q_proj, attention.k_proj, attention.v_proj), (mlp.gate_proj, mlp.up_proj)
    return (
        (_fold_norm(torch.cat([p.weight for p in qkv]), layer.input_layernorm.weight), _concat_biases(qkv)),
        (
            _fold_norm(torch.cat([p.weight for p in gate_up]), layer.post_attention_layernorm.weight),
            _concat_biases(gate_up),
        ),
    )


def _fold_norm(weight: torch.Tensor, norm_weight: torch.Tensor) -> torch.Tensor:
    """``weight * norm_weight`` computed in float32 and rounded once to the weight's dtype."""
    return (weight.float() * norm_weight.float()).to(weight.dtype).detach()


def _concat_biases(projections: tuple[nn.Linear, ...]) -> torch.Tensor | None:
    """The projections' biases end to end (zeros for one without), or None if none has one."""
    if all(p.bias is None for p in projections):
        return None
    return torch.cat(
        [p.bias if p.bias is not None else p.weight.new_zeros(p.out_features) for p in projections]
    ).detach()


def _unit_rms(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x / rms(x) in fp32, without the norm's weight (folded into the next projection)."""
    eps = getattr(norm, "variance_epsilon", None) or norm.eps
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


def _rms_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's RMSNorm (computed in fp32, as Llama-family models do) as one fused kernel."""
    return norm.weight * _unit_rms(norm, x)
