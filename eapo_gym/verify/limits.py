"""Bounds on the verifier's work: input sizes, nesting depth, number sizes and CPU time.

A thread cannot be interrupted, so every expensive step is bounded structurally (the caps
below are checked before the work is done) and the remaining loops poll a :class:`Budget`
that measures this thread's own CPU time, so queueing on a busy machine is not counted.
"""

from __future__ import annotations

import time

MAX_RESPONSE_CHARS = 200_000
MAX_ANSWER_CHARS = 2_000
MAX_DEPTH = 40
MAX_NODES = 2_000
MAX_ITEMS = 64
MAX_LITERAL_DIGITS = 400
MAX_INT_BITS = 1 << 17
MAX_MAG_BITS = 1 << 20
MAX_FACTORIAL = 10_000
MAX_TRIG_ARG = 1e6
MAX_PM = 3
DEFAULT_CPU_BUDGET_S = 0.3


class LimitExceeded(Exception):
    """The input is too large, too deep or took too long: the verdict is False."""


class Budget:
    """A CPU-time deadline for the calling thread, checked cooperatively."""

    __slots__ = ("_deadline",)

    def __init__(self, seconds: float = DEFAULT_CPU_BUDGET_S) -> None:
        self._deadline = time.thread_time() + seconds

    def check(self) -> None:
        """Raise :class:`LimitExceeded` once this thread has spent its CPU budget."""
        if time.thread_time() > self._deadline:
            raise LimitExceeded("cpu budget spent")


def clean_text(text: object, max_chars: int) -> str | None:
    """Return ``text`` if it is a str of bounded size with no NUL byte or lone surrogate, else None."""
    if not isinstance(text, str) or len(text) > max_chars or "\x00" in text:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text
