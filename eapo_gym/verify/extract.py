"""Find the final answer in a model response.

Order: the last non-empty ``<answer>`` tag, the last non-empty ``\\boxed{}``/``\\fbox{}``
(nested braces allowed), a response that is itself a bare answer, an "answer is ..." phrase,
and finally the last inline-math span or number in the prose. Every scan is linear in the
length of the response (regexes use bounded repeats where they could backtrack), so hostile
inputs cannot trigger super-linear work.
"""

from __future__ import annotations

import re
from collections import deque

from .limits import MAX_ANSWER_CHARS, MAX_RESPONSE_CHARS, clean_text

_OPEN, _CLOSE = "<answer>", "</answer>"
_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_DELIM = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_PAIRS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_PHRASE = re.compile(r"(?i)\banswer\b\s{0,3}(?:is\b\s{0,3}:?|:|=)|\banswer\*\*\s{0,3}:?|\banswer:\*\*")
_FILLER = re.compile(
    r"^(?:(?:therefore|thus|so|then|just|simply|exactly|equal to|given by|that|is|be|:)\s+)+", re.I
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?: ?/ ?\d+)?(?: ?%)?")
_WORD = re.compile(r"[A-Za-z]+")
_TEXTISH = re.compile(r"\\[a-zA-Z]+(?:\s*\{[^{}]*\})?")
_ANSWER_WORDS = frozenset(
    "or and square sq cubic units unit cm m km mm inches inch feet ft meters metres meter kg g grams "
    "seconds minutes hours days years dollars cents degrees percent pi sqrt sin cos tan log ln exp".split()
)


def extract_answer(response: str) -> str | None:
    """Return the final answer in ``response``, or None when there is none (never raises)."""
    try:
        found = find_answer(response)
    except Exception:
        return None
    return found[0] if found else None


def find_answer(response: str) -> tuple[str, str] | None:
    """Return ``(answer, source)`` with source one of tag, boxed, bare, phrase, last."""
    text = clean_text(response, MAX_RESPONSE_CHARS)
    if text is None:
        return None
    found = _find(text)
    if found is None or len(found[0]) > MAX_ANSWER_CHARS or not found[0].strip():
        return None
    return found[0].strip(), found[1]


def _find(text: str) -> tuple[str, str] | None:
    tag = _last_tag(text)
    scope = text if tag is None else tag
    boxed = _last_boxed(scope)
    if boxed is not None:
        return boxed, "boxed"
    stripped = unwrap_math(scope.strip())
    if stripped and not is_prose(stripped):
        if len(stripped) > MAX_ANSWER_CHARS:
            return None
        return stripped, "tag" if tag is not None else "bare"
    phrase = _answer_phrase(scope)
    if phrase:
        return phrase, "phrase"
    last = _last_math_or_number(scope)
    return (last, "last") if last else None


def _last_tag(text: str) -> str | None:
    lower = text if _OPEN in text else text.lower()
    if len(lower) != len(text):
        lower = text
    pos = lower.rfind(_OPEN)
    n = len(text)
    while pos >= 0:
        start = pos + len(_OPEN)
        j = start
        while j < n and text[j].isspace():
            j += 1
        if j < n and not lower.startswith(_CLOSE, j):
            end = lower.find(_CLOSE, start)
            return text[start : end if end >= 0 else n]
        pos = lower.rfind(_OPEN, 0, pos)
    return None


def _brace_matches(text: str) -> dict[int, int]:
    """Map each unescaped ``{`` to its matching ``}`` (one linear pass)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    for k, ch in enumerate(text):
        if ch == "{" and (k == 0 or text[k - 1] != "\\"):
            stack.append(k)
        elif ch == "}" and (k == 0 or text[k - 1] != "\\") and stack:
            match[stack.pop()] = k
    return match


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    match = _brace_matches(text)
    for start in reversed(starts):
        j = start
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            close = match.get(j)
            if close is not None and text[j + 1 : close].strip():
                return text[j + 1 : close].strip()
        elif j < len(text) and j > start:
            token = re.match(r"[^\s$]+", text[j : j + 64])
            if token:
                return token.group(0)
    return None


def unwrap_math(text: str) -> str:
    """Strip one pair of math delimiters around the whole string and a trailing period."""
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
            inner = text[len(left) : -len(right)]
            if left not in inner:
                text = inner.strip()
                break
    return text[:-1].rstrip() if text.endswith(".") and not text.endswith("..") else text


def is_prose(text: str) -> bool:
    """True when ``text`` reads as sentences rather than a bare answer."""
    plain = _TEXTISH.sub(" ", text)
    previous_word = False
    for m in _WORD.finditer(plain):
        word = m.group(0).lower()
        is_word = len(word) >= 2 and word not in _ANSWER_WORDS
        gap = plain[m.start() - 1 : m.start()] if m.start() else ""
        if is_word and previous_word and gap.isspace():
            return True
        previous_word = is_word
    return False


def _math_spans(text: str) -> tuple[int, int, str] | None:
    """The last complete inline-math span as (start, end, content)."""
    last = None
    open_tok, open_end, open_start = "", 0, 0
    for m in _DELIM.finditer(text):
        tok = m.group(0)
        if tok == "\\$":
            continue
        if not open_tok:
            if tok in _PAIRS:
                open_tok, open_start, open_end = tok, m.start(), m.end()
        elif tok == _PAIRS[open_tok]:
            content = text[open_end : m.start()].strip()
            if content:
                last = (open_start, m.end(), content)
            open_tok = ""
    return last


def last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last match of ``pattern`` in ``text`` (one linear scan)."""
    tail = deque(pattern.finditer(text), maxlen=1)
    return tail[0] if tail else None


def _answer_phrase(text: str) -> str | None:
    last = last_match(_PHRASE, text)
    if last is None:
        return None
    rest = text[last.end() : last.end() + MAX_ANSWER_CHARS].lstrip(" *:\t")
    line = rest.split("\n", 1)[0]
    span = _math_spans(line)
    if span is not None and not line[: span[0]].strip(" *:").replace("therefore", "").strip():
        return span[2]
    if span is not None and is_prose(line[: span[0]]):
        return span[2]
    end = _SENTENCE_END.search(line)
    answer = _FILLER.sub("", (line[: end.start()] if end else line).strip(" *"))
    if span is None and is_prose(answer):
        numbers = list(_NUMBER.finditer(answer))
        return numbers[0].group(0) if numbers else None
    return answer or None


def _last_math_or_number(text: str) -> str | None:
    span = _math_spans(text)
    number = last_match(_NUMBER, text)
    if span is not None and (number is None or number.start() < span[1]):
        return span[2]
    return number.group(0) if number else None
