"""Batched sampling of policy turns: KV-cached decoding, temperature, top-p, per-row stops.

``LocalBackend`` presents it as the rollout's first generation backend; with KV reuse
(``EpisodeCache``) each episode's cache survives from one turn to the next, so a turn
only runs the tokens that are new since the last one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import cached_property

import torch

from eapo_gym.protocol import TurnProtocol

from .backend import Samples, SamplingConfig, register_backend
from .decoding import KVRows, StaticKVDecoder, make_decoder
from .lock import QueryLock

COMPACT_SHARE = 0.25  # drop finished rows from the decoder once they are this share of it


class TurnStopper:
    """Per row, whether a turn is over: EOS, or ``TurnProtocol.turn_is_complete`` on the text the row
    wrote, decoded token by token as the environment decodes a token-mode turn. So a tag ends a turn
    alike whether it is one token or spelled out in pieces (the package's tokenizer has both).

    The rule can only become true at a token whose text ends with a closing tag's last character
    (``closing``, the ids of such tokens); the row's text is decoded and checked at those tokens only,
    and a row that ended is not checked again. Ids beyond the tokenizer's (a padded vocabulary) have no text.
    """

    def __init__(self, tokenizer, protocol: TurnProtocol) -> None:
        self.tokenizer = tokenizer
        self.protocol = protocol
        self.eos = tokenizer.eos_token_id
        self.pieces = dict(enumerate(tokenizer.batch_decode([[i] for i in range(len(tokenizer))])))
        last = {protocol.query_close[-1], protocol.answer_close[-1]}
        self.closing = torch.tensor([i for i, piece in self.pieces.items() if piece[-1:] in last])

    def start(self, batch: int, device: torch.device) -> None:
        self.closing = self.closing.to(device)
        self.written = torch.zeros(batch, 16, dtype=torch.long, device=device)  # grows as needed
        self.length = 0
        self.over = torch.zeros(batch, dtype=torch.bool, device=device)

    def update(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed the newest token of each row; return which rows just ended their turn."""
        if self.length == self.written.shape[1]:
            self.written = torch.cat([self.written, torch.zeros_like(self.written)], 1)
        self.written[:, self.length] = tokens
        self.length += 1
        done = (tokens == self.eos) & ~self.over
        for row in (torch.isin(tokens, self.closing) & ~done & ~self.over).nonzero()[:, 0].tolist():
            text = "".join(self.pieces.get(i, "") for i in self.written[row, : self.length].tolist())
            done[row] = self.protocol.turn_is_complete(text)
        self.over |= done
        return done

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the state of rows ``rows`` only (their order as given)."""
        self.written, self.over = self.written[rows], self.over[rows]


@torch.no_grad()
def sample_turns(
    model,
    prompts: list[list[int]],
    stopper: TurnStopper,
    config: SamplingConfig,
    pad_id: int,
    generator: torch.Generator | None = None,
    lock: QueryLock | None = None,
) -> Samples:
    """Continue every prompt until its turn ends or ``max_new_tokens`` is reached.

    Finished rows leave the decoding batch once they make up ``COMPACT_SHARE`` of it,
    so later steps only pay for the rows still writing. With a ``lock``, no row can
    write the query-open tag (consultation locked, as at the paper's evaluation).
    """
    input_ids, attention_mask = _left_pad(prompts, pad_id, next(model.parameters()).device)
    decoder = make_decoder(model, len(prompts), input_ids.shape[1] + config.max_new_tokens)
    logits = decoder.prefill(input_ids, attention_mask)
    return _continue_turns(decoder, logits, prompts, stopper, config, pad_id, generator, lock)


def _left_pad(
    prompts: list[list[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``prompts`` as one left-padded batch: token ids and attention mask."""
    batch, width = len(prompts), max(len(p) for p in prompts)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long, device=device)
    attention_mask = torch.zeros((batch, width), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt, device=device)
        attention_mask[row, width - len(prompt) :] = 1
    return input_ids, attention_mask


def _continue_turns(
    decoder,
    logits: torch.Tensor,
    contexts: list[list[int]],
    stopper: TurnStopper,
    config: SamplingConfig,
    pad_id: int,
    generator: torch.Generator | None,
    lock: QueryLock | None,
) -> Samples:
    """The sampling loop of ``sample_turns``, after the prefill that gave ``logits`` (one row per context)."""
    device = logits.device
    batch = len(contexts)
    stopper.start(batch, device)
    if lock is not None:
        lock.start(contexts)
    tokens = torch.full((batch, config.max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, config.max_new_tokens), device=device)
    lengths = torch.full((batch,), config.max_new_tokens, dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)  # the batch row of each decoder row
    live = torch.ones(batch, dtype=torch.bool, device=device)  # decoder rows still in their turn
    for t in range(config.max_new_tokens):
        if lock is not None:
            logits = logits.masked_fill(lock.banned(), float("-inf"))
        token, logprob = _choose(logits, config, generator)
        token = torch.where(live, token, pad_id)
        tokens[rows, t], logprobs[rows, t] = token, logprob
        ended = stopper.update(token) & live
        if lock is not None:
            lock.update(token)
        lengths[rows] = torch.where(ended, t + 1, lengths[rows])  # no host sync, unlike a mask index
        live &= ~ended
        remaining = int(live.sum())
        if remaining == 0 or t + 1 == config.max_new_tokens:
            break
        if len(rows) - remaining >= COMPACT_SHARE * len(rows):
            kept = live.nonzero()[:, 0]
            decoder.keep(kept)
            stopper.keep(kept)
            if lock is not None:
                lock.keep(kept)
            rows, live, token = rows[kept], live[kept], token[kept]
        logits = decoder.step(token)
    finished = lengths < config.max_new_tokens
    finished[rows[~live]] = True  # a row that ended on the last token has length max_new_tokens too
    lengths, tokens, logprobs = lengths.tolist(), tokens.tolist(), logprobs.tolist()
    return Samples(
        tokens=[row[:n] for row, n in zip(tokens, lengths, strict=True)],
        logprobs=[row[:n] for row, n in zip(logprobs, lengths, strict=True)],
        stopped=finished.tolist(),
    )


def _choose(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None):
    """Sample (or argmax) one token per row; return it with its log-probability under pi / T."""
    if config.temperature == 0:
        token = logits.argmax(-1)
        return token, logits.log_softmax(-1).gather(-1, token[:, None])[:, 0]
    logprobs = (logits / config.temperature).log_softmax(-1)
    probs = logprobs.exp()
    if config.top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > config.top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    token = _inverse_cdf_sample(probs, generator)
    return token, logprobs.gather(-1, token[:, None])[:, 0]


def _inverse_cdf_sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row from unnormalised ``probs``: the first index whose cumulative mass exceeds u."""
    cumulative = probs.cumsum(-1)
    threshold = torch.rand(len(probs), 1, device=probs.device, generator=generator) * cumulative[:, -1:]
    return (cumulative <= threshold).sum(-1).clamp(max=probs.shape[-1] - 1)


class EpisodeCache:
    """What ``LocalBackend`` keeps between calls for KV reuse: the last call's cache (``KVRows``,
    one row per episode) and, per episode key, its row there and the tokens that row holds.
    Everything is dropped when the model's weights change."""

    def __init__(self) -> None:
        self.rows: KVRows | None = None
        self.entries: dict[Hashable, tuple[int, list[int]]] = {}
        self.weights: tuple[int, ...] = ()

    def split(self, model, contexts: list[list[int]], keys: Sequence[Hashable]) -> tuple[KVRows | None, list]:
        """The cached part of each context (row r of the returned cache) and the tokens still to run.
        A context that the cached tokens are not a strict prefix of is run from its start."""
        weights = _weights_version(model)
        if weights != self.weights:
            self.rows, self.entries, self.weights = None, {}, weights
        rows, suffixes = [], []
        for context, key in zip(contexts, keys, strict=True):
            row, cached = self.entries.get(key, (-1, []))
            if len(cached) >= len(context) or context[: len(cached)] != cached:
                row, cached = -1, []
            rows.append(row)
            suffixes.append(context[len(cached) :])
        if self.rows is None:
            return None, suffixes
        past = self.rows.select(torch.tensor(rows, device=self.rows.valid.device))
        self.rows = None  # the selected rows are copied out; free the rest before decoding
        return past, suffixes

    def update(
        self, rows: KVRows, contexts: list[list[int]], keys: Sequence[Hashable], samples: Samples
    ) -> None:
        """Hold this call's cache; keys that it did not include are forgotten."""
        self.rows = rows
        self.entries = {
            key: (row, context + tokens[:-1])  # a turn's last token was never fed back
            for row, (key, context, tokens) in enumerate(zip(keys, contexts, samples.tokens, strict=True))
        }


def _weights_version(model) -> tuple[int, ...]:
    """Changes when a parameter is replaced or modified in place (optimizer step, ``load_state_dict``):
    the autograd version counter counts in-place writes."""
    return tuple(n for p in model.parameters() for n in (p.data_ptr(), p._version))


@register_backend("local")
class LocalBackend:
    """The rollout's generation backend in this process: ``sample_turns`` with the model's own
    (KV-cached) decoder, stopping each row where the environment's protocol ends a turn, and
    locking the query tag with a logits mask (``QueryLock``) when asked. With ``kv_reuse``
    (``StaticKVDecoder`` models only) an episode's cache is kept from one turn to the next and
    a turn runs only its new tokens: the last sampled one and the environment's feedback.
    Without ``StaticKVDecoder`` (``decoding.DecoderFallbackWarning`` says why) there is no reuse."""

    locks_queries = True

    def __init__(
        self,
        model,
        tokenizer,
        protocol: TurnProtocol,
        sampling: SamplingConfig,
        generator: torch.Generator,
        kv_reuse: bool = True,
    ) -> None:
        self.model, self.tokenizer, self.sampling, self.generator = model, tokenizer, sampling, generator
        self.protocol = protocol
        self.stopper = TurnStopper(tokenizer, protocol)
        self.max_new_tokens = sampling.max_new_tokens
        self.episodes = EpisodeCache() if kv_reuse and StaticKVDecoder.unsupported(model, 0) is None else None

    @cached_property
    def query_lock(self) -> QueryLock:
        """The logits constraint of ``lock_queries``, built on first use."""
        vocab = self.model.get_output_embeddings().weight.shape[0]
        device = next(self.model.parameters()).device
        return QueryLock(self.tokenizer, self.protocol.query_open, vocab, device)

    def sync_weights(self) -> None:
        """Nothing to copy: the decoder runs the live model, and the KV cache notices a weight change
        itself (``EpisodeCache``)."""

    @torch.no_grad()
    def generate(
        self, contexts: Sequence[list[int]], keys: Sequence[Hashable], lock_queries: bool = False
    ) -> Samples:
        pad_id, contexts = self.tokenizer.pad_token_id, list(contexts)
        lock = self.query_lock if lock_queries else None
        positions = max(map(len, contexts)) + self.max_new_tokens
        if self.episodes is None or StaticKVDecoder.unsupported(self.model, positions) is not None:
            # sample_turns' decoder warns when the model falls back to HFCacheDecoder
            return sample_turns(
                self.model, contexts, self.stopper, self.sampling, pad_id, self.generator, lock
            )
        past, suffixes = self.episodes.split(self.model, contexts, keys)
        input_ids, attention_mask = _left_pad(suffixes, pad_id, next(self.model.parameters()).device)
        width = (0 if past is None else past.valid.shape[1]) + input_ids.shape[1] + self.max_new_tokens
        decoder = StaticKVDecoder(self.model, len(contexts), width, park=True)
        logits = decoder.prefill(input_ids, attention_mask, past)
        samples = _continue_turns(
            decoder, logits, contexts, self.stopper, self.sampling, pad_id, self.generator, lock
        )
        fed = torch.tensor([len(tokens) - 1 for tokens in samples.tokens], device=logits.device)
        self.episodes.update(decoder.turn_cache(fed), contexts, keys, samples)
        return samples
