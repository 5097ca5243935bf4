"""Find the final answer in a model response, or in a reference solution given as the gold answer.

Order: the text after the last ``</think>`` (the whole text when that part has no answer); in it
the last non-empty ``<answer>`` tag; then the later of the last group of ``\\boxed{}`` answers and
the last explicit final-answer statement ("Final Answer: ...", Minerva's "The final answer is
$X$. I hope it is correct.", GSM8K's "#### X"); then an "answer is ..." phrase; a text that is
itself a bare answer; and finally the last math span (or short list of spans) or number.

Several boxes joined only by connectors (commas, "and", ``\\quad``, a label such as ``x =``, a
few words within one sentence) are one answer, read as a list: ``\\boxed{1}, \\boxed{2}`` is
``1, 2``. In a statement, the answer follows the last "is"/"are" outside math: "The largest $n$
is 34." gives ``34``. Every scan is linear in the length of the text (regexes use bounded repeats
where they could backtrack), so hostile inputs cannot trigger super-linear work.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator

from .limits import MAX_ANSWER_CHARS, MAX_ITEMS, MAX_RESPONSE_CHARS, clean_text

Span = tuple[int, int, str]

_OPEN, _CLOSE, _THINK_END = "<answer>", "</answer>", "</think>"
_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_DELIM = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_PAIRS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_INLINE = frozenset({"$", "\\("})
_UNESCAPED_DELIM = re.compile(r"(?<!\\)\$|\\\(|\\\[")
_FINAL = re.compile(r"(?i)\bfinal\s{1,3}answers?\b(?:[ \t]{0,3}(?:is\b|are\b|:|=|\*\*|\n))+|#{4}")
_PHRASE = re.compile(
    r"(?i)\banswers?\b\s{0,3}(?:(?:is|are)\b\s{0,3}:?|:|=)|\banswer\*\*\s{0,3}:?|\banswer:\*\*"
)
_COPULA = re.compile(
    r"(?i)\b(?:is|are|was|were|equals|be|becomes|gives|yields|get|obtain|"
    r"(?:simplifies|reduces|evaluates|comes|amounts|equal)\s{1,3}to)\b"
)
_FILLER = re.compile(
    r"^(?:(?:therefore|thus|so|then|just|simply|exactly|equal to|given by|that|is|be|:)\s+)+", re.I
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_OPERATOR_GAP = re.compile(r"\s{0,3}(?:[=+\-*/^<>\u00d7\u00f7\u00b7]|\\(?:times|cdot|div|approx))\s{0,3}")
_CHECK = re.compile(
    r"(?im)^[ \t*#]{0,6}(?:let\s{1,3}me\s{1,3}|let's\s{1,3}|to\s{1,3})?(?:verify|verification|check)"
)
_CLAUSE_START = re.compile(r"\.(?:\s|$)|\n|(?i:\b(?:so|thus|hence|therefore|then)\b)")
_NUMBER = re.compile(r"-?\d+(?:(?:,|\{ ?, ?\})\d+)*(?:\.\d+)?(?: ?/ ?\d+)?(?: ?%)?")
_WORD = re.compile(r"[A-Za-z]+")
_ALNUM = re.compile(r"[A-Za-z0-9]")
_TEXTISH = re.compile(r"\\[a-zA-Z]+(?:\s*\{[^{}]*\})?")
_ANSWER_WORDS = frozenset(
    "or and square sq cubic units unit cm m km mm inches inch feet ft meters metres meter kg g grams "
    "seconds minutes hours days years dollars cents degrees percent pi sqrt sin cos tan log ln exp".split()
)
_STRIP = " *:\t\n\"'\u201c\u201d"

# Connectors between two answers that make them one list.
_GAP_MARKUP = re.compile(
    r"\\(?:text[a-z]*|mbox|mathrm)\s*\{|\\(?:quad|qquad|[,;:! ]|\\)|\\[()\[\]]|[{}$~&,;()]"
)
_GAP_BREAK = re.compile(r"[.!?](?:\s|$)|\n[ \t]*\n")
_MAX_GAP_CHARS = 80
_MAX_GAP_WORDS = 5
_CONJUNCTIONS = frozenset({"and", "or"})
_NOT_CONNECTORS = frozenset(
    "but wait actually however instead not no rather hmm oops mistake wrong correct correction again "
    "answer final therefore thus hence so because since check recheck verify sorry let if "
    "then than else otherwise".split()
)


def extract_answer(response: str, *, join_boxes: bool = True) -> str | None:
    """Return the final answer in ``response``, or None when there is none (never raises)."""
    try:
        found = find_answer(response, join_boxes=join_boxes)
    except Exception:
        return None
    return found[0] if found else None


def find_answer(response: str, *, join_boxes: bool = True) -> tuple[str, str] | None:
    """Return ``(answer, source)``; source is one of tag, boxed, final, phrase, bare, last.

    ``join_boxes=False`` reads only the last ``\\boxed{}`` of a group of several.
    """
    text = clean_text(response, MAX_RESPONSE_CHARS)
    if text is None:
        return None
    end_think = text.rfind(_THINK_END)
    found = None
    if end_think >= 0:
        found = _find(text[end_think + len(_THINK_END) :], join_boxes)
    if found is None:
        found = _find(text, join_boxes)
    return found


def _find(text: str, join_boxes: bool) -> tuple[str, str] | None:
    found = _find_raw(text, join_boxes)
    if found is None:
        return None
    answer = found[0].strip()
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    return answer, found[1]


def _find_raw(text: str, join_boxes: bool) -> tuple[str, str] | None:
    tag = _last_tag(text)
    scope = text if tag is None else tag
    boxes = _box_group(scope, join_boxes)
    final = last_match(_FINAL, scope)
    if final is not None and (boxes is None or final.start() > boxes[0]):
        stated = _statement(scope[final.end() :])
        if stated:
            return stated, "final"
    if boxes is not None:
        return boxes[1], "boxed"
    phrase = last_match(_PHRASE, scope)
    if phrase is not None:
        stated = _statement(scope[phrase.end() :])
        if stated:
            return stated, "phrase"
    stripped = unwrap_math(scope.strip())
    if stripped and not has_math_delimiters(stripped) and not is_prose(stripped):
        return stripped, "tag" if tag is not None else "bare"
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


def _boxes(text: str) -> list[Span]:
    """Every non-empty ``\\boxed{...}`` (or ``\\boxed x``) as (start, end, content), in order."""
    starts = [m for m in _BOX.finditer(text)]
    if not starts:
        return []
    match = _brace_matches(text)
    out: list[Span] = []
    for m in starts:
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            close = match.get(j)
            if close is not None and text[j + 1 : close].strip():
                out.append((m.start(), close + 1, text[j + 1 : close].strip()))
        elif j < len(text) and j > m.end():
            token = re.match(r"[^\s$]+", text[j : j + 64])
            if token:
                out.append((m.start(), j + token.end(), token.group(0)))
    return out


def _box_group(text: str, join: bool) -> tuple[int, str] | None:
    """(start, answer) of the last box, joined with the boxes that connect to it."""
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1] if join else []):
        first = group[-1]
        if box[1] > first[0] or len(group) >= MAX_ITEMS or not connects(text[box[1] : first[0]], loose=True):
            break
        group.append(box)
    group.reverse()
    return group[0][0], ", ".join(content for _, _, content in group)


def connects(gap: str, *, loose: bool) -> bool:
    """True when ``gap`` between two answers makes them one list.

    Commas, semicolons, "and", "or", spacing and math delimiters always connect; ``loose`` also
    allows a few other words in the same sentence (``x = \\boxed{1} or y = \\boxed{2}``,
    ``\\boxed{3} apples and \\boxed{4} pears``) unless one of them revises or concludes.
    """
    if len(gap) > _MAX_GAP_CHARS or _GAP_BREAK.search(gap):
        return False
    plain = _GAP_MARKUP.sub(" ", gap)
    words = [w.lower() for w in _WORD.findall(plain)]
    if not loose:
        return all(w in _CONJUNCTIONS for w in words) and not _WORD.sub("", plain).strip()
    return len(words) <= _MAX_GAP_WORDS and not any(w in _NOT_CONNECTORS for w in words)


def has_math_delimiters(text: str) -> bool:
    """True when ``text`` opens inline or display math (an escaped ``\\$`` does not)."""
    return _UNESCAPED_DELIM.search(text) is not None


def unwrap_math(text: str) -> str:
    """Strip one pair of math delimiters or markdown bold around the whole string and a final period."""
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
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


def math_spans(text: str) -> list[Span]:
    """Every complete math span as (start, end, content); ``$...$`` and ``\\(...\\)`` stay on one line."""
    spans: list[Span] = []
    open_tok, open_end, open_start = "", 0, 0
    line_end = -1  # the first newline at or after open_end (len(text) when there is none)
    for m in _DELIM.finditer(text):
        tok = m.group(0)
        if tok == "\\$":
            continue
        if open_tok in _INLINE and line_end < m.start():
            open_tok = ""
        if not open_tok:
            if tok in _PAIRS:
                open_tok, open_start, open_end = tok, m.start(), m.end()
                if line_end < open_end:
                    line_end = text.find("\n", open_end)
                    if line_end < 0:
                        line_end = len(text)
        elif tok == _PAIRS[open_tok]:
            content = text[open_end : m.start()].strip()
            if content:
                spans.append((open_start, m.end(), content))
            open_tok = ""
    return spans


def last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last match of ``pattern`` in ``text`` (one linear scan)."""
    tail = deque(pattern.finditer(text), maxlen=1)
    return tail[0] if tail else None


def _group(text: str, spans: list[Span], index: int, forward: bool, loose: bool) -> str:
    """The contents of ``spans[index]`` and its neighbours that connect to it, joined as a list."""
    picked = [spans[index]]
    step = 1 if forward else -1
    k = index + step
    while 0 <= k < len(spans) and len(picked) < MAX_ITEMS:
        a, b = (picked[-1], spans[k]) if forward else (spans[k], picked[-1])
        if not connects(text[a[1] : b[0]], loose=loose):
            break
        picked.append(spans[k])
        k += step
    if not forward:
        picked.reverse()
    return ", ".join(content for _, _, content in picked)


def _statement(rest: str) -> str | None:
    """The answer stated at the start of ``rest``, the text after "answer is", "####" and the like."""
    rest = rest[:MAX_ANSWER_CHARS]
    rest = rest[len(rest) - len(rest.lstrip(_STRIP)) :]
    spans = math_spans(rest)
    first_end = next(_outside(_SENTENCE_END.finditer(rest), spans), None)
    end = len(rest) if first_end is None else first_end.start()
    spans = [s for s in spans if s[1] <= end]
    copulas = deque(_outside(_COPULA.finditer(rest, 0, end), spans), maxlen=1)
    if copulas:
        found = _stated(rest, copulas[0].end(), end, spans)
        if found:
            return found
    return _stated(rest, 0, end, spans)


def _outside(matches: Iterable[re.Match[str]], spans: list[Span]) -> Iterator[re.Match[str]]:
    """The matches that start outside every span (both in order of position)."""
    k = 0
    for m in matches:
        while k < len(spans) and spans[k][1] <= m.start():
            k += 1
        if k == len(spans) or m.start() < spans[k][0]:
            yield m


def _stated(text: str, begin: int, end: int, spans: list[Span]) -> str | None:
    """The answer in ``text[begin:end]``: the math span (or list) it starts with, the last one after
    prose, else the text itself unless it is prose (then its first number)."""
    inner = [k for k, s in enumerate(spans) if s[0] >= begin]
    if inner:
        head = _FILLER.sub("", text[begin : spans[inner[0]][0]].strip(_STRIP))
        if not _ALNUM.search(head):
            return _group(text, spans, inner[0], forward=True, loose=True)
        if is_prose(head):
            return _group(text, spans, inner[-1], forward=False, loose=True)
    answer = _FILLER.sub("", text[begin:end].strip(_STRIP)).strip(_STRIP)
    if not is_prose(answer):
        return answer or None
    numbers = list(_NUMBER.finditer(answer))
    return numbers[0].group(0) if numbers else None


def _last_math_or_number(text: str) -> str | None:
    """The last math span or number, or in a last clause such as "the least $n$ is 7, at $x = 1$"
    the first after its last "is"; neighbours joined only by commas, "and" or "or" come along.
    A final check on its own line ("Let me verify: ...") is not the answer."""
    check = last_match(_CHECK, text)
    if check is not None and _NUMBER.search(text, 0, check.start()):
        text = text[: check.start()]
    spans = math_spans(text)
    numbers = [(m.start(), m.end(), m.group(0)) for m in _outside(_NUMBER.finditer(text), spans)]
    items = sorted(spans + numbers)
    if not items:
        return None
    last = items[-1][0]
    starts = deque(_outside(_CLAUSE_START.finditer(text, 0, last), spans), maxlen=1)
    clause = starts[0].end() if starts else 0
    copulas = deque(_outside(_COPULA.finditer(text, clause, last), spans), maxlen=1)
    if copulas:
        first = next(k for k, item in enumerate(items) if item[0] >= copulas[0].end())
        end = first
        while end + 1 < len(items) and _OPERATOR_GAP.fullmatch(text[items[end][1] : items[end + 1][0]]):
            end += 1  # "is 10 \times 100 = 1,000" is one expression
        if end > first:
            return text[items[first][0] : items[end][1]]
        return _group(text, items, first, forward=True, loose=False)
    return _group(text, items, len(items) - 1, forward=False, loose=False)
