"""Multiple-choice letters and yes/no answers, which need gold-aware extraction."""

from __future__ import annotations

import re

from .extract import last_match
from .normalize import text_key

_GOLD_LETTER = re.compile(r"\(?([A-J])\)?[.:]?")
_GOLD_LOWER = re.compile(r"\(([a-j])\)")
_LEAD_LETTER = re.compile(r"\(?([A-J])\)?(?:$|[\s.:)\],])|\(([a-j])\)|([a-j])$")
_PROSE_LETTER = re.compile(
    r"(?i:answer|option|choice)(?:\s{1,3}(?i:is))?\s{0,3}:?\s{0,3}\**\s{0,3}\(?([A-J])\b"
    r"|\(([A-J])\)\s{0,3}(?i:is)\s{1,3}(?i:the\s{1,3})?(?i:correct|right)\b"
)
_MARKUP = re.compile(r"\\(?:text[a-z]*|math[a-z]*|mbox)\s*|[{}$*]")
_ANSWER_PREFIX = re.compile(r"^(?i:(?:the\s{1,3})?(?:final\s{1,3})?answer\s{0,3}(?:is)?\s{0,3}:?\s{0,3})")
_YES_NO = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}
_LAST_YES_NO = re.compile(r"(?i)\b(yes|no|true|false)\b")


def gold_choice(gold: str) -> str | None:
    """The option letter when ``gold`` is a multiple-choice answer such as ``B`` or ``(B)``."""
    plain = _MARKUP.sub("", gold).strip()
    m = _GOLD_LETTER.fullmatch(plain) or _GOLD_LOWER.fullmatch(plain)
    return m.group(1).upper() if m else None


def response_choice(response: str, found: tuple[str, str] | None) -> str | None:
    """The option letter chosen in ``response``, whose extracted ``(answer, source)`` is ``found``."""
    if found is not None:
        answer, source = found
        m = _LEAD_LETTER.match(_ANSWER_PREFIX.sub("", _MARKUP.sub("", answer).strip()))
        if m:
            return (m.group(1) or m.group(2) or m.group(3)).upper()
        if source in ("boxed", "tag", "final"):
            return None
    last = last_match(_PROSE_LETTER, response)
    return (last.group(1) or last.group(2)) if last else None


def gold_yes_no(gold: str) -> str | None:
    """``yes`` or ``no`` when ``gold`` is a yes/no (or true/false) answer."""
    return _YES_NO.get(text_key(gold))


def response_yes_no(response: str, found: tuple[str, str] | None) -> str | None:
    """``yes`` or ``no`` as answered in ``response``, whose extracted ``(answer, source)`` is ``found``."""
    if found is not None and found[1] != "last":
        first = re.match(r"[a-z]+", text_key(found[0]))
        if first and first.group(0) in _YES_NO:
            return _YES_NO[first.group(0)]
        if found[1] in ("boxed", "tag", "final"):
            return None
    last = last_match(_LAST_YES_NO, response[-2000:])
    return _YES_NO[last.group(1).lower()] if last else None
