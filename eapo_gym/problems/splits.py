"""Stable hashing: reproducible random streams and the train/test split of a question.

Everything here uses ``hashlib``, never Python's per-process salted ``hash()``,
so seeds and splits are identical across runs and machines.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TEST_FRACTION = 0.1
_BUCKETS = 10_000


def stable_hash(text: str) -> int:
    """A 64-bit integer digest of ``text`` that never changes between runs."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def seeded_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded by the stable hash of ``parts`` joined with ``/``."""
    return random.Random(stable_hash("/".join(str(p) for p in parts)))


def split_of(question: str, test_fraction: float = TEST_FRACTION) -> str:
    """``"test"`` for the hash bucket holding ``test_fraction`` of all questions, else ``"train"``."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    bucket = stable_hash("split/" + question.strip()) % _BUCKETS
    return "test" if bucket < round(test_fraction * _BUCKETS) else "train"


def draw_in_split(
    split: str, draw: Callable[[int], T], question: Callable[[T], str], attempts: int
) -> tuple[int, T]:
    """The first ``(attempt, draw(attempt))`` whose question hashes to ``split`` (rejection sampling)."""
    for attempt in range(attempts):
        item = draw(attempt)
        if split_of(question(item)) == split:
            return attempt, item
    raise RuntimeError(f"no {split} question in {attempts} attempts")
