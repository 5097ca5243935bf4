"""String clean-up before parsing: unicode, spacing, delimiters, digit grouping, units and currency.

Percent signs and degree marks are kept (as ``%`` and ``°``) because they change the value;
the parser turns them into nodes. Units and currency are stripped from the end of an answer
and the unit is returned so that two answers with different units are never equal.
"""

from __future__ import annotations

import re

_UNICODE = str.maketrans(
    {
        "\u2212": "-", "\u2013": "-", "\u2012": "-", "\ufe63": "-", "\uff0d": "-",
        "\u00d7": r" \times ", "\u22c5": r" \cdot ", "\u00b7": r" \cdot ", "\u2217": "*", "\u00f7": "/",
        "\u2264": r" \le ", "\u2265": r" \ge ", "\u2260": r" \ne ", "\u2248": r" \approx ",
        "\u03c0": r" \pi ", "\u221e": r" \infty ", "\u221a": r"\sqrt", "\u222a": r" \cup ",
        "\u2208": r" \in ", "\u00b1": r" \pm ", "\u2213": r" \mp ", "\u2205": r" \emptyset ",
        "\u2026": "...", "\u2032": "'", "\u00ba": "\u00b0", "\u2103": "\u00b0",
        "\u00bd": r" \frac{1}{2}", "\u2153": r" \frac{1}{3}", "\u2154": r" \frac{2}{3}",
        "\u00bc": r" \frac{1}{4}", "\u00be": r" \frac{3}{4}", "\u2155": r" \frac{1}{5}",
        "\u2159": r" \frac{1}{6}", "\u215b": r" \frac{1}{8}",
        "\u03b1": r" \alpha ", "\u03b2": r" \beta ", "\u03b3": r" \gamma ", "\u03b4": r" \delta ",
        "\u03b8": r" \theta ", "\u03bb": r" \lambda ", "\u03bc": r" \mu ", "\u03c3": r" \sigma ",
        "\u03c6": r" \phi ", "\u03c9": r" \omega ",
        "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2007": " ", "\u2008": " ", "\u200a": " ",
        "\u2002": " ", "\u2003": " ", "\u2004": " ", "\u2005": " ", "\u2006": " ", "\u3000": " ",
        "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "",
        "\t": " ", "\n": " ", "\r": " ",
    }
)  # fmt: skip

_OUTER = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SUBS = (
    (re.compile(r"\\(?:left|right)\s*[.]"), ""),
    (re.compile(r"\\(?:left|right|[bB]igg?[lrm]?)(?![a-zA-Z])"), ""),
    (re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z])"), ""),
    (re.compile(r"\\(?:d|t|c)frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\(?:d|t)binom(?![a-zA-Z])"), r"\\binom"),
    (re.compile(r"\\(?:lvert|rvert|vert|mid)(?![a-zA-Z])"), "|"),
    (re.compile(r"\\lbrace(?![a-zA-Z])"), r"\\{"),
    (re.compile(r"\\langle(?![a-zA-Z])"), "("),
    (re.compile(r"\\rangle(?![a-zA-Z])"), ")"),
    (re.compile(r"\\rbrace(?![a-zA-Z])"), r"\\}"),
    (
        re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])"),
        "°",
    ),
    (re.compile(r"\\text\s*\{\s*°\s*\}"), "°"),
    (re.compile(r"\\%|\\text\s*\{\s*%\s*\}"), "%"),
    (re.compile(r"\\\$|\$|€|£|¥|\bUSD\b|\bUS\b"), " "),
    (re.compile(r"\{\s*,\s*\}"), ""),
    (re.compile(r"\{([^{}]*)\\choose(?![a-zA-Z])([^{}]*)\}"), r"\\binom{\1}{\2}"),
    (re.compile(r"\{([^{}]*)\\over(?![a-zA-Z])([^{}]*)\}"), r"\\frac{\1}{\2}"),
    (re.compile(r"(?<!\\)\\(?:[,;:> ]|quad|qquad|hspace\{[^{}]*\})"), " "),
    (re.compile(r",\s*\\!\s*"), ","),
    (re.compile(r"\\!"), ""),
    (re.compile(r"~"), " "),
    (re.compile(r"\s+"), " "),
)
_LEADING = re.compile(r"^(?:\\approx|approximately|approx\.?|about|around|roughly|=)\s*", re.I)
_TRAILING = re.compile(r"[\s,]*\brespectively$|\s+\([A-Za-z][A-Za-z ]+\)$", re.I)  # "5 (five)"
_DIGIT_GROUPS = re.compile(r"(?<![\d.])\d{1,3}(?: \d{3})+(?!\d)")
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?[%°]?")
_INNER_THOUSANDS = re.compile(r"(?:(?<=[=\s])|^)[1-9]\d{0,2}(?:,\d{3})+(?=$|\s)")
_TEXT_UNIT = re.compile(
    r"\s*\\(?:text|textrm|textnormal|textit|textbf|mbox|mathrm|rm|mathit)\s*\{\s*([A-Za-z][A-Za-z .\-/]*)\}"
    r"\s*(\^\s*\{?\s*[23]\s*\}?)?\s*\.?\s*$"
)
_WORD_UNIT = re.compile(
    r"(?<=[\d\s}).°])\s*((?:square|sq\.?|cubic)\s+)?([A-Za-z]+(?:/[A-Za-z]+)?)(\^?[23])?\s*\.?$"
)

_NUMBER_WORDS = re.compile(
    r"([-+]?(?:\d[\d,]*(?:\.\d+)?|\\frac\{\d+\}\{\d+\})\s*[%°]?)\s+([A-Za-z][A-Za-z \-]*)"
)
_NOT_UNIT_WORDS = frozenset("and or not pi sqrt sin cos tan log exp inf oo".split())
_UNIT_GROUPS = {
    "mm": "mm millimeter millimeters millimetre millimetres",
    "cm": "cm centimeter centimeters centimetre centimetres",
    "m": "m meter meters metre metres",
    "km": "km kilometer kilometers kilometre kilometres",
    "in": "in inch inches",
    "ft": "ft foot feet",
    "yd": "yd yard yards",
    "mi": "mi mile miles",
    "mg": "mg milligram milligrams",
    "g": "g gram grams",
    "kg": "kg kilogram kilograms",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "l": "l liter liters litre litres",
    "gal": "gal gallon gallons",
    "s": "s sec secs second seconds",
    "min": "min mins minute minutes",
    "h": "h hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "year years yr yrs",
    "mph": "mph",
    "km/h": "km/h kmh kph",
    "m/s": "m/s",
    "cent": "cent cents",
    "": "unit units dollar dollars euro euros",
}
_UNITS = {word: key for key, words in _UNIT_GROUPS.items() for word in words.split()}


# Text JSON-escaped twice writes \\\\frac for \\frac; outside matrices (where \\\\ ends a row) undo that.
_DOUBLED_BACKSLASH = re.compile(
    r"(?<!\\)\\\\(?=(?:[dtc]?frac|sqrt|left|right|pi|infty|cdot|times|text[a-z]*|math[a-z]*|boxed|"
    r"le|ge|leq|geq|neq|ne|pm|mp|circ|in|cup|quad|qquad)(?![a-zA-Z]))"
)
_SUPERSCRIPTS = re.compile("[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u207b]+")
_SUPERSCRIPT_MAP = str.maketrans(
    "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b", "0123456789-"
)


def to_plain(text: str) -> str:
    """Map unicode maths to LaTeX/ASCII and collapse spacing commands and whitespace."""
    if "&" not in text:
        text = _DOUBLED_BACKSLASH.sub(r"\\", text)
    text = _SUPERSCRIPTS.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPT_MAP) + "}", text)
    text = text.translate(_UNICODE)
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    return text.strip()


def strip_outer(text: str) -> str:
    """Remove math delimiters and a ``\\boxed{}`` that wrap the whole string."""
    for _ in range(4):
        text = text.strip()
        for left, right in _OUTER:
            if len(text) >= len(left) + len(right) and text.startswith(left) and text.endswith(right):
                text = text[len(left) : len(text) - len(right)].strip()
        if text.startswith("\\boxed{") and text.endswith("}") and _closes_at_end(text, 6):
            text = text[7:-1]
        else:
            break
    return text.strip()


def _closes_at_end(text: str, start: int) -> bool:
    depth = 0
    for k in range(start, len(text)):
        ch = text[k]
        if ch == "{" and text[k - 1] != "\\":
            depth += 1
        elif ch == "}" and text[k - 1] != "\\":
            depth -= 1
            if depth == 0:
                return k == len(text) - 1
    return False


def _strip_units(text: str) -> tuple[str, str | None]:
    unit: str | None = None
    for _ in range(3):
        m = _TEXT_UNIT.search(text)
        if m and m.start() > 0:
            words = m.group(1).strip().lower()
            if words in ("or", "and") or (len(words) == 1 and words not in _UNITS):
                break
            if words.rstrip(".") in ("percent", "per cent"):
                return text[: m.start()].rstrip() + "%", unit
            if words.rstrip(".") in ("degree", "degrees", "deg"):
                return text[: m.start()].rstrip() + "°", unit
            unit = unit or _canonical_unit(words, m.group(2))
            text = text[: m.start()].rstrip()
            continue
        m = _WORD_UNIT.search(text)
        if m and m.start() > 0:
            word = m.group(2).lower()
            if word in ("percent",):
                return text[: m.start()].rstrip() + "%", unit
            if word in ("degree", "degrees", "deg"):
                return text[: m.start()].rstrip() + "°", unit
            prev = text[: m.start()].rstrip()
            if word in _UNITS and (len(word) > 1 or (m.group(0)[0] == " " and prev[-1:].isdigit())):
                unit = unit or _canonical_unit(word, m.group(3) or m.group(1))
                text = prev
                continue
        break
    m = _NUMBER_WORDS.fullmatch(text)
    if m:
        words = m.group(2).lower().split()
        if all(len(w) >= 3 and w not in _NOT_UNIT_WORDS for w in words):
            return m.group(1), unit or _canonical_unit(" ".join(words), None)
    return text, unit


def _canonical_unit(words: str, power: str | None) -> str | None:
    words = re.sub(r"^(?:square|sq\.?|cubic)\s+", "", words.strip().lower())
    key = _UNITS.get(words, _UNITS.get(words.rstrip("s"), words))
    if not key:
        return None
    if power:
        digits = "".join(ch for ch in power if ch.isdigit())
        key += "^" + (digits or ("3" if "cubic" in power else "2"))
    return key


def _trim(text: str) -> str:
    """Drop trailing spaces, commas, semicolons and a sentence-ending period (not an ellipsis)."""
    text = text.rstrip(" ,;")
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip(" ,;")
    return text


def normalize(text: str) -> tuple[str, str | None]:
    """Return the cleaned answer and its unit (None when it has none)."""
    text = strip_outer(to_plain(strip_outer(text)))
    text = _trim(_TRAILING.sub("", _trim(_LEADING.sub("", text))))
    text, unit = _strip_units(text)
    text = _trim(text)
    text = _DIGIT_GROUPS.sub(lambda m: m.group(0).replace(" ", ""), text)
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    elif not any(bracket in text for bracket in "([{"):  # "10 \times 100 = 1,000", but not "(1,000)"
        text = _INNER_THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    return text, unit


_KEY_DROP = re.compile(r"\\(?:text[a-z]*|math[a-z]*|mbox|operatorname)|[{}$\s*]")


def text_key(text: str) -> str:
    """Loose key for comparing non-mathematical answers (case, markup and spacing ignored)."""
    return _KEY_DROP.sub("", to_plain(text)).lower().rstrip(".")
