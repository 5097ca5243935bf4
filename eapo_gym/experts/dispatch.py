"""Sending a round of queries to the experts: batched per expert, concurrent, with a deadline, never crashing.

A round is every admitted query of one turn: of one episode (``ExpertMathEnv.step``)
or of a whole batch of episodes (``ExpertMathVectorEnv``), so that a server sees a
batch's queries arrive together.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from eapo_gym.experts.base import BaseExpert, Expert, ExpertQuery, ExpertReply

logger = logging.getLogger("eapo_gym.experts")


@dataclass(frozen=True)
class ExpertOutcome:
    """What came back for one query: a reply, or ``None`` with the reason, and what it cost."""

    expert: str
    reply: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


class ExpertPanel:
    """Experts shared by one environment or a whole vector environment.

    Query ``j`` of an episode's turn goes to expert ``j mod len(experts)``.
    ``parallel=True``: each expert receives all of its queries of the round in
    one ``consult`` (or ``aconsult``) call, the experts concurrently, and the round
    waits at most ``timeout`` seconds. ``parallel=False``: the ``j``-th queries of
    all episodes form a sub-round, each query seeing its episode's earlier
    replies, and each sub-round gets ``timeout``. An exception, a timeout or a
    malformed reply becomes a failed outcome (logged once per expert and kind);
    the episode goes on.

    Experts with their own ``aconsult`` (servers) run on a background event loop;
    the others run in a thread pool that is abandoned when an expert hangs.

    Once at least ``failure_warning_after`` queries were sent and more than
    ``failure_warning_share`` of them failed, one warning says so (a wrong URL, a
    server down): a run with failing experts goes on, but not silently. A share
    of 1 never warns. ``failed_by`` counts each expert's failed queries and keeps its
    latest error, for a caller that reports them per update (the training loop).
    """

    def __init__(
        self,
        experts: Sequence[Expert],
        timeout: float = 60.0,
        parallel: bool = True,
        max_reply_chars: int = 2000,
        failure_warning_share: float = 0.2,
        failure_warning_after: int = 20,
    ) -> None:
        self.experts = list(experts)
        self.timeout = timeout
        self.parallel = parallel
        self.max_reply_chars = max_reply_chars
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner_pid = os.getpid()
        self._warned: set[tuple[str, str]] = set()
        self.failure_warning_share = failure_warning_share
        self.failure_warning_after = failure_warning_after
        self.queries = self.failures = 0
        self.failed_by: dict[str, tuple[int, str]] = {}  # expert -> (failed queries, latest error)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pool": None, "_loop": None}

    def _forget_parents_workers(self) -> None:
        """In a forked child the parent's worker threads and loop thread do not exist: start afresh
        (without this, a round submitted to them would wait out its whole timeout)."""
        if self._owner_pid != os.getpid():
            self._pool, self._loop, self._owner_pid = None, None, os.getpid()

    def round(self, turns: Sequence[Sequence[ExpertQuery]]) -> list[list[ExpertOutcome]]:
        """One outcome per query, per turn, in order; ``turns[i]`` is one episode's admitted queries."""
        if not self.experts:
            return [[ExpertOutcome("none", None, "no experts configured") for _ in turn] for turn in turns]
        outcomes = self._ask(turns) if self.parallel else self._successive(turns)
        self._count_failures([outcome for turn in outcomes for outcome in turn])
        return outcomes

    def _successive(self, turns: Sequence[Sequence[ExpertQuery]]) -> list[list[ExpertOutcome]]:
        """The ``j``-th queries of all turns as one sub-round, each seeing its turn's earlier replies."""
        outcomes: list[list[ExpertOutcome]] = [[] for _ in turns]
        for position in range(max((len(turn) for turn in turns), default=0)):
            batch = [
                [replace(turn[position], context=turn[position].context + _replies_so_far(outcomes[i]))]
                if position < len(turn)
                else []
                for i, turn in enumerate(turns)
            ]
            for i, outcome in enumerate(self._ask(batch, first_expert=position)):
                outcomes[i] += outcome
        return outcomes

    def _count_failures(self, outcomes: list[ExpertOutcome]) -> None:
        self.queries += len(outcomes)
        self.failures += sum(outcome.reply is None for outcome in outcomes)
        for outcome in outcomes:
            if outcome.reply is None:
                count = self.failed_by.get(outcome.expert, (0, ""))[0]
                self.failed_by[outcome.expert] = (count + 1, outcome.error or "no reply")
        share = self.failures / max(self.queries, 1)
        if self.queries >= self.failure_warning_after and share > self.failure_warning_share:
            if ("*", "share") in self._warned:
                return
            self._warned.add(("*", "share"))
            last = next(outcome.error for outcome in reversed(outcomes) if outcome.reply is None)
            logger.warning("experts failed on %d of %d queries (%.0f%%, more than %.0f%%): check them, e.g. "
                           "the server URL; the episodes go on. Last error: %s", self.failures, self.queries,
                           100 * share, 100 * self.failure_warning_share, last)  # fmt: skip

    def _ask(
        self, turns: Sequence[Sequence[ExpertQuery]], first_expert: int = 0
    ) -> list[list[ExpertOutcome]]:
        """Send each expert its queries of the round in one call; wait for all, at most ``timeout``."""
        routes: dict[int, list[tuple[int, int]]] = {}  # expert -> (turn, position) of its queries
        for i, turn in enumerate(turns):
            for j in range(len(turn)):
                routes.setdefault((first_expert + j) % len(self.experts), []).append((i, j))
        futures = {e: self._submit(e, [turns[i][j] for i, j in route]) for e, route in routes.items()}
        wait(futures.values(), timeout=self.timeout)
        outcomes: list[list[ExpertOutcome | None]] = [[None] * len(turn) for turn in turns]
        for e, route in routes.items():
            for (i, j), outcome in zip(route, self._collect(e, futures[e], len(route)), strict=True):
                outcomes[i][j] = outcome
        return outcomes  # type: ignore[return-value]

    def _submit(self, e: int, queries: list[ExpertQuery]) -> Future:
        expert = self.experts[e]
        if _has_own_aconsult(expert):
            return asyncio.run_coroutine_threadsafe(expert.aconsult(queries), self._event_loop())
        return self._thread_pool().submit(expert.consult, queries)

    def _collect(self, e: int, future: Future, count: int) -> list[ExpertOutcome]:
        """Exactly ``count`` outcomes; an error, a timeout or a malformed reply list fails the batch."""
        if not future.done():
            future.cancel()
            self._abandon_pool()
            return self._failed(e, count, "timeout", f"no reply within {self.timeout:g} s")
        error = future.exception()
        if error is not None:
            return self._failed(e, count, type(error).__name__, f"{type(error).__name__}: {error}")
        replies = future.result()
        valid = isinstance(replies, list | tuple) and all(isinstance(r, str | ExpertReply) for r in replies)
        if not valid:
            return self._failed(
                e, count, "malformed", "expert returned something other than a list of strings"
            )
        if len(replies) != count:
            message = f"expert returned {len(replies)} replies for {count} queries"
            return self._failed(e, count, "malformed", message)
        return [self._outcome(e, reply) for reply in replies]

    def _outcome(self, e: int, reply: str | ExpertReply) -> ExpertOutcome:
        name = self.experts[e].name
        if isinstance(reply, str):
            return ExpertOutcome(name, reply[: self.max_reply_chars])
        usage = (reply.prompt_tokens, reply.completion_tokens, reply.retries)
        if not isinstance(reply.text, str):
            error = reply.error or "expert returned no text"
            self._warn_once(name, error.split(":", 1)[0], error)
            return ExpertOutcome(name, None, error, *usage)
        return ExpertOutcome(name, reply.text[: self.max_reply_chars], None, *usage)

    def _failed(self, e: int, count: int, kind: str, error: str) -> list[ExpertOutcome]:
        name = self.experts[e].name
        self._warn_once(name, kind, error)
        return [ExpertOutcome(name, None, error)] * count

    def _warn_once(self, expert: str, kind: str, error: str) -> None:
        if (expert, kind) not in self._warned:
            self._warned.add((expert, kind))
            logger.warning("expert %s failed (%s); the episode continues. Further failures of this kind "
                           "are counted in info['expert_errors'] only.", expert, error)  # fmt: skip

    def _thread_pool(self) -> ThreadPoolExecutor:
        self._forget_parents_workers()
        if self._pool is None:
            workers = max(2, len(self.experts))
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eapo-expert")
        return self._pool

    def _abandon_pool(self) -> None:
        """Leave a hung expert's thread behind so the next round gets fresh workers."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        self._forget_parents_workers()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="eapo-expert-loop", daemon=True).start()
        return self._loop

    def close(self) -> None:
        """Stop the workers; experts with ``aclose`` (pooled clients) close on the loop they ran on."""
        self._abandon_pool()
        if self._loop is not None:
            for expert in self.experts:
                if _has_own_aconsult(expert) and hasattr(expert, "aclose"):
                    asyncio.run_coroutine_threadsafe(expert.aclose(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


def _has_own_aconsult(expert: Expert) -> bool:
    """Whether the expert does real async I/O (not ``BaseExpert``'s thread fallback)."""
    method = getattr(type(expert), "aconsult", None)
    return method is not None and method is not BaseExpert.aconsult


def _replies_so_far(outcomes: list[ExpertOutcome]) -> str:
    return "".join(f"\n{outcome.reply}" for outcome in outcomes if outcome.reply)
