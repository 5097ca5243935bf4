"""The turn protocol: which tags mark expert queries, answers and expert replies.

The paper does not publish its tag syntax. Our default follows the
ReSearch/ReCall family it builds on:

- ``<expert>question</expert>`` asks an expert (up to ``max_queries`` per turn);
- ``<answer>...</answer>`` gives the final answer (a ``\\boxed{}`` inside is taken
  first; a bare ``\\boxed{}`` in the turn counts as an answer when no tag is used);
- the environment appends ``<reply>...</reply>`` blocks, one per query, in order.

A turn ends at the answer's closing tag, at the ``max_queries``-th query's closing
tag, or at end-of-turn (EOS). Every tag is configurable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class ParsedTurn:
    """What a policy turn asked for: expert queries, an answer span, or neither."""

    queries: tuple[str, ...] = ()
    answer: str | None = None
    dropped_queries: int = 0

    @property
    def kind(self) -> str:
        if self.answer is not None:
            return "answer"
        return "consult" if self.queries else "none"


@dataclass(frozen=True)
class TurnProtocol:
    """Tag syntax and limits of one policy turn."""

    query_open: str = "<expert>"
    query_close: str = "</expert>"
    answer_open: str = "<answer>"
    answer_close: str = "</answer>"
    reply_open: str = "<reply>"
    reply_close: str = "</reply>"
    max_queries: int = 3
    max_query_chars: int = 1000
    unavailable_notice: str = "Expert unavailable. Continue on your own."
    failure_notice: str = "Expert did not answer. Continue on your own."

    def __post_init__(self) -> None:
        if self.max_queries < 1:
            raise ValueError("max_queries must be at least 1")
        tags = [self.query_open, self.query_close, self.answer_open, self.answer_close]
        if any(not tag for tag in tags) or len(set(tags)) != len(tags):
            raise ValueError("protocol tags must be non-empty and distinct")

    @cached_property
    def _query_pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.query_open) + r"(.*?)" + re.escape(self.query_close), re.DOTALL)

    @cached_property
    def reply_pattern(self) -> re.Pattern[str]:
        """Matches one reply block; group 1 is the reply's text."""
        return re.compile(re.escape(self.reply_open) + r"(.*?)" + re.escape(self.reply_close), re.DOTALL)

    @cached_property
    def _answer_pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.answer_open) + r"(.*?)" + re.escape(self.answer_close), re.DOTALL)

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag of the protocol, the reply delimiters included."""
        return (
            self.query_open,
            self.query_close,
            self.answer_open,
            self.answer_close,
            self.reply_open,
            self.reply_close,
        )

    def turn_is_complete(self, text: str) -> bool:
        """True when ``text`` ends a turn: an answer was closed or the K-th query was closed."""
        if text.endswith(self.answer_close) and self.answer_open in text:
            return True
        return text.endswith(self.query_close) and text.count(self.query_close) >= self.max_queries

    def parse(self, text: str) -> ParsedTurn:
        """Parse one turn. An answer wins over queries written in the same turn."""
        answers = self._answer_pattern.findall(text)
        if answers:
            return ParsedTurn(answer=answers[-1].strip())
        if self.answer_open not in text and self.query_open not in text and "\\boxed" in text:
            return ParsedTurn(answer=text.strip())
        queries = [q.strip()[: self.max_query_chars] for q in self._query_pattern.findall(text)]
        queries = [q for q in queries if q]
        kept = tuple(queries[: self.max_queries])
        return ParsedTurn(queries=kept, dropped_queries=len(queries) - len(kept))

    def reply_block(self, replies: list[str]) -> str:
        """The text appended after a consulting turn: one delimited reply per query."""
        return "\n" + "".join(f"{self.reply_open}{reply}{self.reply_close}\n" for reply in replies)


DEFAULT_PROTOCOL = TurnProtocol()
