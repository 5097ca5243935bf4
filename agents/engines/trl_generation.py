"""The rollout's generation inside a TRL ``GRPOTrainer``, through TRL's public API only.

- transformers (no ``--vllm``): the ``--rollout-backend`` (``rollout.backend.make_backend``; our
  ``LocalBackend`` by default: KV-cached sampling, turn stopping and the query lock as in the
  native engine) on the trainer's model, unwrapped by TRL's public
  ``trl.models.unwrap_model_for_generation``. Under DeepSpeed ZeRO-3 that gathers the weights for
  the whole rollout, so every process then generates on its own; FSDP is refused
  (``contract.check_engine_settings``). Tested on the CPU, in one process and in two.
- vLLM (``--vllm colocate`` or ``server``): ``VLLMBackend``, through the trainer's public
  ``vllm_generation`` (``trl.generation.vllm_generation.VLLMGeneration``; the trainer syncs its
  weights before every rollout). Not exercised in CI: vLLM needs CUDA.

vLLM stops only at token ids, so the closing tags' last tokens are stop ids (``stop_ids``, set in
vLLM's sampling settings by ``trl_settings.vllm_settings``), and a row that stopped at one while
its turn is not complete (``TurnProtocol.turn_is_complete``: the first of K queries, or a
multi-token tag's last piece inside other text) is continued, until its turn ends, EOS, or
``max_new_tokens``. vLLM's server and tensor-parallel modes gather the prompts of every process,
so each call starts with an all-gather of the batch sizes, batches are padded to the largest, and
a process whose episodes are over joins the others' calls with filler rows (``finish``) until
every process is done.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from eapo_gym.protocol import TurnProtocol

from ..rollout.backend import GenerationBackend, Samples, SamplingConfig, make_backend


def stop_ids(tokenizer, protocol: TurnProtocol) -> list[int]:
    """The last token of each closing tag that can end a turn (query and answer)."""
    closing = (protocol.query_close, protocol.answer_close)
    return sorted({tokenizer.encode(tag, add_special_tokens=False)[-1] for tag in closing})


@contextmanager
def trainer_backend(
    trainer,
    name: str,
    tokenizer,
    protocol: TurnProtocol,
    sampling: SamplingConfig,
    seed: int,
    lock_queries: bool,
) -> Iterator[GenerationBackend]:
    """The generation backend of one rollout on ``trainer``: vLLM's when the trainer uses it, else the
    backend registered as ``name`` on the unwrapped model, its sampling noise seeded with ``seed``."""
    if trainer.args.use_vllm:
        backend = VLLMBackend(
            trainer.vllm_generation, trainer.accelerator, tokenizer, protocol, sampling, lock_queries
        )
        yield backend
        backend.finish()
        return
    from trl.models import unwrap_model_for_generation

    with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
        training = model.training
        model.eval()
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        yield make_backend(name, model, tokenizer, protocol, sampling, generator, lock_queries)
        model.train(training)


@dataclass
class _Turn:
    """One row's turn so far."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    stopped: bool = False


class VLLMBackend:
    """``GenerationBackend`` through TRL's ``VLLMGeneration.generate`` (vLLM's log-probabilities),
    continuing rows that stopped inside a turn; ``finish`` keeps the processes in lockstep. The query
    lock is in vLLM's sampling settings, fixed for the run (``trl_settings.vllm_settings``), and the
    trainer syncs vLLM's weights before every rollout."""

    locks_queries = True

    def __init__(
        self, vllm, accelerator, tokenizer, protocol: TurnProtocol, sampling: SamplingConfig, locked: bool
    ) -> None:
        self.vllm, self.accelerator, self.tokenizer, self.protocol = vllm, accelerator, tokenizer, protocol
        self.locked = locked
        self.max_new_tokens = sampling.max_new_tokens
        self.eos = tokenizer.eos_token_id
        self.stops = set(stop_ids(tokenizer, protocol)) - {self.eos}
        self.filler = [self.eos]

    def sync_weights(self) -> None:
        """Nothing to do: the trainer syncs vLLM's weights itself before every rollout."""

    def generate(
        self, contexts: Sequence[list[int]], keys: Sequence[Hashable], lock_queries: bool = False
    ) -> Samples:
        if lock_queries != self.locked:
            raise ValueError("vLLM's query lock is fixed for the run by its sampling settings")
        turns = [_Turn() for _ in contexts]
        pending = list(range(len(contexts)))
        while pending:
            ids, logprobs = self._round([contexts[row] + turns[row].tokens for row in pending])
            pending = [
                row
                for row, new, scores in zip(pending, ids, logprobs, strict=True)
                if self._extend(turns[row], new, scores)
            ]
        return Samples(
            tokens=[turn.tokens for turn in turns],
            logprobs=[turn.logprobs for turn in turns],
            stopped=[turn.stopped for turn in turns],
        )

    def finish(self) -> None:
        """Join the other processes' remaining generation calls until every process is done."""
        while self._round([]) is not None:
            pass

    def _extend(self, turn: _Turn, ids: list[int], logprobs: list[float]) -> bool:
        """Append ``ids`` to ``turn`` up to where the turn ends; whether the row must continue."""
        for token, logprob in zip(ids, logprobs, strict=True):
            if len(turn.tokens) == self.max_new_tokens:
                return False
            turn.tokens.append(token)
            turn.logprobs.append(logprob)
            if token == self.eos:
                turn.stopped = True
                return False
            turn.text += self.tokenizer.decode([token])
            if self.protocol.turn_is_complete(turn.text):
                turn.stopped = True
                return False
            if token in self.stops:
                return len(turn.tokens) < self.max_new_tokens
        return False

    def _round(self, prompts: list[list[int]]) -> tuple[list[list[int]], list[list[float]]] | None:
        """One generation call, padded to the largest batch of any process; ``None`` once all have none."""
        width = len(prompts)
        if self.accelerator.num_processes > 1:
            sizes = self.accelerator.gather(torch.tensor([width], device=self.accelerator.device))
            width = int(sizes.max())
        if width == 0:
            return None
        padded = prompts + [self.filler] * (width - len(prompts))
        _, ids, logprobs, _ = self.vllm.generate(prompts=padded, images=None, num_generations=1)
        rows = range(len(prompts))
        return [list(ids[row]) for row in rows], [[top[0] for top in logprobs[row]] for row in rows]
