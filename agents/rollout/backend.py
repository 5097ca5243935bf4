"""The seam between the multi-turn rollout and whatever generates text, and the one factory of backends.

A backend writes the policy's next turn for a batch of episodes. The rollout
(``play.play_episodes``), training, evaluation and every agent see generation only through this
interface and get their backend from ``make_backend``, so vLLM, an external trainer's generation
path or another decoder is one new file: a class decorated with ``@register_backend("name")`` in
``agents/rollout/``, chosen with ``--rollout-backend name``. ``sampling.LocalBackend`` (``local``,
our KV-cached decoders) is the first one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Protocol

from eapo_gym.protocol import TurnProtocol

from .plugins import decorated_classes


@dataclass
class SamplingConfig:
    """How turns are sampled. ``temperature=0`` is greedy."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass
class Samples:
    """Per row: the generated ids (the turn-ending token included), their log-probabilities under the
    sampling distribution, and whether the turn ended (False: cut at ``max_new_tokens``)."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    stopped: list[bool]


class GenerationBackend(Protocol):
    """Continues each context by one policy turn.

    ``contexts[i]`` is an episode's token ids so far (prompt, earlier turns and
    feedback); ``keys[i]`` identifies that episode within the rollout batch, so a
    backend may keep per-episode state (a KV cache) between turns. A turn ends
    where the environment's ``TurnProtocol.turn_is_complete`` says, at EOS, or after
    ``max_new_tokens``: stopping there is the backend's job.

    ``lock_queries``: no row may write the query-open tag (consultation locked, as in the paper's
    evaluation and in self-exploratory RL); a backend that cannot constrain its sampling so sets
    ``locks_queries = False`` and ``make_backend`` refuses it where a lock is needed.
    ``sync_weights`` is called after every update of the policy's weights (a backend holding its
    own copy of them, or a cache computed with them, refreshes it).
    """

    max_new_tokens: int
    locks_queries: bool

    def generate(
        self, contexts: Sequence[list[int]], keys: Sequence[Hashable], lock_queries: bool = False
    ) -> Samples: ...

    def sync_weights(self) -> None: ...


_registered: dict[str, type] = {}


def register_backend(name: str) -> Callable[[type], type]:
    """Class decorator: make a backend available as ``--rollout-backend name``. Its constructor takes
    ``(model, tokenizer, protocol, sampling, generator)``."""

    def register(cls: type) -> type:
        _registered[name] = cls
        return cls

    return register


@cache
def built_in_backends() -> dict[str, str]:
    """``{name: module}`` of every ``@register_backend("name")`` class in ``agents/rollout/``."""
    return decorated_classes(Path(__file__).parent, __package__, "register_backend")


def backend_names() -> list[str]:
    return sorted({*built_in_backends(), *_registered})


def make_backend(
    name: str,
    model,
    tokenizer,
    protocol: TurnProtocol,
    sampling: SamplingConfig,
    generator,
    lock_queries: bool = False,
) -> GenerationBackend:
    """The backend registered as ``name``; ``ValueError`` for an unknown name, or for one that cannot
    lock the query tag when ``lock_queries`` says the caller will ask it to."""
    if name not in _registered:
        if name not in built_in_backends():
            raise ValueError(f"unknown rollout backend {name!r}; choose one of {', '.join(backend_names())}")
        import_module(built_in_backends()[name])  # importing the module registers the class
    backend = _registered[name](model, tokenizer, protocol, sampling, generator)
    if lock_queries and not backend.locks_queries:
        raise ValueError(f"rollout backend {name!r} cannot lock the query tag, which this run needs")
    return backend
