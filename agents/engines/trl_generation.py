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

vLLM stops only at token ids, so the closing tags' last tokens are stop ids (set in vLLM's sampling
settings by ``trl_settings.vllm_settings``), and ``rollout.continuation`` continues a row that
stopped inside its turn. vLLM's server and tensor-parallel modes gather the prompts of every process,
so each call starts with an all-gather of the batch sizes, batches are padded to the largest, and
a process whose episodes are over joins the others' calls with filler rows (``finish``) until
every process is done.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager

import torch

from eapo_gym.protocol import TurnProtocol

from ..rollout.backend import GenerationBackend, Samples, SamplingConfig, make_backend
from ..rollout.continuation import TurnContinuation


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


class VLLMBackend:
    """``GenerationBackend`` through TRL's ``VLLMGeneration.generate`` (vLLM's log-probabilities),
    continuing rows that stopped inside a turn; ``finish`` keeps the processes in lockstep. The query
    lock is in vLLM's sampling settings, fixed for the run (``trl_settings.vllm_settings``), and the
    trainer syncs vLLM's weights before every rollout."""

    locks_queries = True

    def __init__(
        self, vllm, accelerator, tokenizer, protocol: TurnProtocol, sampling: SamplingConfig, locked: bool
    ) -> None:
        self.vllm, self.accelerator, self.locked = vllm, accelerator, locked
        self.max_new_tokens = sampling.max_new_tokens
        self.continuation = TurnContinuation(tokenizer, protocol, sampling.max_new_tokens)
        self.filler = [tokenizer.eos_token_id]

    def sync_weights(self) -> None:
        """Nothing to do: the trainer syncs vLLM's weights itself before every rollout."""

    def generate(
        self, contexts: Sequence[list[int]], keys: Sequence[Hashable], lock_queries: bool = False
    ) -> Samples:
        if lock_queries != self.locked:
            raise ValueError("vLLM's query lock is fixed for the run by its sampling settings")
        return self.continuation.turns(contexts, self._round)

    def finish(self) -> None:
        """Join the other processes' remaining generation calls until every process is done."""
        while self._round([]) is not None:
            pass

    def _round(self, prompts: list[list[int]]) -> tuple[list[list[int]], list[list[float]]] | None:
        """One generation call, padded to the largest batch of any process; ``None`` once all have none
        (``finish``)."""
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
