"""The turn protocol: the tags of queries, answers and replies, the notices, and when a turn ends.

The paper does not publish its tag syntax. Our default follows the
ReSearch/ReCall family it builds on:

- ``<expert>question</expert>`` asks an expert (up to ``max_queries`` per turn);
- ``<answer>...</answer>`` gives the final answer (a ``\\boxed{}`` inside is taken
  first; a bare ``\\boxed{}`` in the turn counts as an answer when no tag is used);
- the environment appends ``<reply>...</reply>`` blocks, one per query, in order.

A turn ends at the answer's closing tag, at the ``max_queries``-th query's closing
tag, or at end-of-turn (EOS). Every tag is configurable. The rule is written once,
in ``turn_ends`` (elementwise on Python values or tensors); ``turn_is_complete`` applies
it to a turn's text, as the environment and the agents' batched sampler both do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

EXHAUSTED_REPLY = "No further steps: combine the steps above to finish."

SegmentKind = Literal["tag", "reply", "notice"]


@dataclass(frozen=True)
class FeedbackSegment:
    """A piece of what the environment appended after a turn.

    ``kind`` is ``"reply"`` for text an expert wrote, ``"notice"`` for the
    environment's own messages in a reply's place, and ``"tag"`` for reply
    delimiters and newlines. ``token_ids`` holds the piece's ids in token mode.
    """

    kind: SegmentKind
    text: str
    token_ids: tuple[int, ...] | None = None


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
    """Tag syntax, notices and limits of one policy turn."""

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
    exhausted_notice: str = EXHAUSTED_REPLY

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

    @property
    def notices(self) -> frozenset[str]:
        """Texts that stand in a reply's place but were not written by an expert."""
        return frozenset((self.unavailable_notice, self.failure_notice, self.exhausted_notice))

    def turn_ends(
        self, closed_queries: Any, answer_opened: Any, at_answer_close: Any, at_query_close: Any
    ) -> Any:
        """The turn-end rule (EOS aside), elementwise on bools/ints or on tensors.

        A turn ends when its newest tag closes an answer that was opened, or closes
        the ``max_queries``-th query.
        """
        return (at_answer_close & answer_opened) | (at_query_close & (closed_queries >= self.max_queries))

    def turn_is_complete(self, text: str) -> bool:
        """``turn_ends`` for a turn's text so far."""
        return bool(
            self.turn_ends(
                text.count(self.query_close),
                self.answer_open in text,
                text.endswith(self.answer_close),
                text.endswith(self.query_close),
            )
        )

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

    def reply_segments(self, replies: list[str]) -> list[FeedbackSegment]:
        """What follows a consulting turn: one delimited reply per query.

        The delimiters between two replies form one tag segment, so the text is
        ``"\\n" + "".join(reply_open + reply + reply_close + "\\n")``.
        """
        segments: list[FeedbackSegment] = []
        opening = "\n" + self.reply_open
        for reply in replies:
            segments.append(FeedbackSegment("tag", opening))
            segments.append(FeedbackSegment("notice" if reply in self.notices else "reply", reply))
            opening = self.reply_close + "\n" + self.reply_open
        segments.append(FeedbackSegment("tag", self.reply_close + "\n"))
        return [segment for segment in segments if segment.text]


DEFAULT_PROTOCOL = TurnProtocol()
