"""The code blocks of the README, CONTRIBUTING.md and the documentation site that tests run.

A block meant to run carries ``<!-- example: NAME -->`` on the line above its opening fence; the
name is unique across all pages. Blocks named ``*.py`` are files a test writes and imports (plugins);
the other Python blocks are snippets that ``tests/test_docs.py`` runs; bash blocks are command lines
that ``tests/test_cli.py`` runs through the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")])
PAGES = [page for page in PAGES if "_build" not in page.parts and "_generated" not in page.parts]
BLOCK = re.compile(
    r"^(?:<!-- example: (?P<name>\S+) -->\n)?```(?P<lang>[^`\n]*)\n(?P<code>.*?)^```$", re.M | re.S
)


def blocks() -> list[tuple[Path, str | None, str, str]]:
    """Every fenced block of every page: (page, example name or None, language, code)."""
    return [
        (page, match["name"], match["lang"], match["code"])
        for page in PAGES
        for match in BLOCK.finditer(page.read_text())
    ]


def examples() -> dict[str, tuple[str, str]]:
    """The named blocks: name -> (language, code); a name used twice is an error."""
    named: dict[str, tuple[str, str]] = {}
    for page, name, lang, code in blocks():
        if name:
            assert name not in named, f"example {name} is named twice ({page})"
            named[name] = (lang, code)
    return named


def example_block(name: str) -> str:
    """The code of the block named ``name``, verbatim."""
    return examples()[name][1]
