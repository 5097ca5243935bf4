"""Gymnasium spaces for text observations and actions."""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

SAMPLE_CHARSET = string.printable + "π√×÷−≤≥≠∞°½¼"


class UnicodeText(spaces.Text):
    """Any string of at most ``max_length`` characters (valid Unicode, no lone surrogates).

    ``sample()`` draws from ASCII plus a few math symbols; ``contains`` accepts
    every character, since problems, model output and expert replies can hold
    any of them.
    """

    def __init__(self, max_length: int, seed: int | None = None) -> None:
        super().__init__(max_length=max_length, min_length=0, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        if not isinstance(x, str) or len(x) > self.max_length:
            return False
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def __repr__(self) -> str:
        return f"UnicodeText({self.max_length})"
