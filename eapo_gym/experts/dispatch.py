"""Sending a turn's queries to the experts: in parallel, with a deadline, never crashing."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from eapo_gym.experts.base import Expert, ExpertQuery, ExpertReply
from eapo_gym.problems import Problem


@dataclass(frozen=True)
class ExpertOutcome:
    """What came back for one query: a reply, or ``None`` with the reason."""

    expert: str
    reply: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


class ExpertPanel:
    """The experts of one environment and their per-episode memory.

    Query ``j`` of a turn goes to expert ``j mod len(experts)``. With
    ``parallel=True`` every expert's batch is sent at once and the turn waits at
    most ``timeout`` seconds in all; with ``parallel=False`` queries go one after
    another, each seeing the replies before it, and each gets ``timeout``. A
    raised exception, a timeout or a reply that is not a string becomes a failed
    outcome: the episode goes on.
    """

    def __init__(
        self,
        experts: Sequence[Expert],
        timeout: float = 60.0,
        parallel: bool = True,
        max_reply_chars: int = 2000,
    ) -> None:
        self.experts = list(experts)
        self.timeout = timeout
        self.parallel = parallel
        self.max_reply_chars = max_reply_chars
        self._memories: list[dict] = [{} for _ in self.experts]
        self._executor: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_executor"] = None
        return state

    def new_episode(self) -> None:
        self._memories = [{} for _ in self.experts]

    def ask(
        self, texts: Sequence[str], problem: Problem, context: str, rng: np.random.Generator
    ) -> list[ExpertOutcome]:
        """One outcome per query text, in order."""
        if not self.experts:
            return [ExpertOutcome("none", None, "no experts configured") for _ in texts]
        seeds = rng.integers(0, 2**63 - 1, size=len(texts))
        queries = [
            ExpertQuery(
                text=text,
                problem=problem,
                context=context,
                memory=self._memories[j % len(self.experts)],
                rng=np.random.default_rng(int(seeds[j])),
            )
            for j, text in enumerate(texts)
        ]
        if self.parallel:
            return self._ask_parallel(queries)
        return self._ask_sequential(queries)

    def _ask_parallel(self, queries: list[ExpertQuery]) -> list[ExpertOutcome]:
        batches: dict[int, list[int]] = {}
        for j in range(len(queries)):
            batches.setdefault(j % len(self.experts), []).append(j)
        executor = self._pool()
        futures = {
            e: executor.submit(self.experts[e].consult, [queries[j] for j in idx])
            for e, idx in batches.items()
        }
        wait(futures.values(), timeout=self.timeout)
        outcomes: list[ExpertOutcome] = [ExpertOutcome("none", None)] * len(queries)
        for e, idx in batches.items():
            for j, outcome in zip(idx, self._result(e, futures[e], len(idx)), strict=True):
                outcomes[j] = outcome
        return outcomes

    def _ask_sequential(self, queries: list[ExpertQuery]) -> list[ExpertOutcome]:
        outcomes: list[ExpertOutcome] = []
        for j, query in enumerate(queries):
            e = j % len(self.experts)
            query.context += "".join(f"\n{o.reply}" for o in outcomes if o.reply)
            future = self._pool().submit(self.experts[e].consult, [query])
            wait([future], timeout=self.timeout)
            outcomes.extend(self._result(e, future, 1))
        return outcomes

    def _result(self, e: int, future: Future, count: int) -> list[ExpertOutcome]:
        """Exactly ``count`` outcomes; an error, a timeout or a malformed reply list fails the batch."""
        if not future.done():
            self._abandon_pool()
            return self._failed(e, count, f"no reply within {self.timeout:g} s")
        error = future.exception()
        if error is not None:
            return self._failed(e, count, f"{type(error).__name__}: {error}")
        replies = future.result()
        valid = isinstance(replies, list | tuple) and all(isinstance(r, str | ExpertReply) for r in replies)
        if not valid:
            return self._failed(e, count, "expert returned something other than a list of strings")
        if len(replies) != count:
            return self._failed(e, count, f"expert returned {len(replies)} replies for {count} queries")
        return [self._outcome(e, reply) for reply in replies]

    def _outcome(self, e: int, reply: str | ExpertReply) -> ExpertOutcome:
        name = self.experts[e].name
        if isinstance(reply, str):
            return ExpertOutcome(name, reply[: self.max_reply_chars])
        usage = (reply.prompt_tokens, reply.completion_tokens, reply.retries)
        if not isinstance(reply.text, str):
            return ExpertOutcome(name, None, reply.error or "expert returned no text", *usage)
        return ExpertOutcome(name, reply.text[: self.max_reply_chars], None, *usage)

    def _failed(self, e: int, count: int, error: str) -> list[ExpertOutcome]:
        return [ExpertOutcome(self.experts[e].name, None, error)] * count

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            workers = max(2, len(self.experts))
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eapo-expert")
        return self._executor

    def _abandon_pool(self) -> None:
        """Leave a hung expert's thread behind so the next turn gets fresh workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        self._abandon_pool()
