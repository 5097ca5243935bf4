"""The expert interface: answer a batch of policy queries, sync or async."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from eapo_gym.problems import Problem


@dataclass
class ExpertQuery:
    """One question from the policy, with what an expert may use to answer it.

    ``context`` is the episode transcript before the question; ``memory`` is a
    scratch dict private to this expert for the current episode (reset at
    ``env.reset``); ``rng`` is seeded by the environment, so a stochastic expert
    is reproducible from the episode seed.
    """

    text: str
    problem: Problem
    context: str = ""
    memory: dict[str, Any] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


@dataclass(frozen=True)
class ExpertReply:
    """One query's outcome with its cost: ``text``, or ``text=None`` and the ``error`` that prevented it.

    An expert may return plain strings; one that talks to a server returns these
    to report token usage and retries, and to fail a single query without
    failing the rest of its batch.
    """

    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


@runtime_checkable
class Expert(Protocol):
    """Anything with a ``name`` and ``consult(queries)``: one ``str`` or ``ExpertReply`` per query."""

    name: str

    def consult(self, queries: Sequence[ExpertQuery]) -> list[str | ExpertReply]: ...


class BaseExpert(ABC):
    """Base class: implement ``consult``; ``aconsult`` runs it off the event loop."""

    name: str = "expert"

    @abstractmethod
    def consult(self, queries: Sequence[ExpertQuery]) -> list[str | ExpertReply]:
        """Return one reply per query, in order."""

    async def aconsult(self, queries: Sequence[ExpertQuery]) -> list[str | ExpertReply]:
        """Async path; servers override it with real concurrent I/O."""
        return await asyncio.to_thread(self.consult, queries)


class FunctionExpert(BaseExpert):
    """Wraps a user callable ``fn(query: ExpertQuery) -> str`` as an expert.

    A round's queries are answered concurrently, one thread each up to
    ``max_concurrency``, so a callable that waits on I/O serves a whole batch's
    queries at once. With ``batched=True`` the callable takes the whole list of
    queries and returns a list of replies instead.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        batched: bool = False,
        max_concurrency: int = 256,
    ) -> None:
        self.fn = fn
        self.batched = batched
        self.max_concurrency = max_concurrency
        self.name = name or getattr(fn, "__name__", "function")

    def consult(self, queries: Sequence[ExpertQuery]) -> list[str | ExpertReply]:
        if self.batched:
            return list(self.fn(list(queries)))
        if len(queries) <= 1:
            return [self.fn(query) for query in queries]
        workers = min(len(queries), self.max_concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eapo-fn-expert") as pool:
            return list(pool.map(self.fn, queries))
