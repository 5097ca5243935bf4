"""Sphinx configuration of the documentation site (Furo theme, MyST Markdown, MathJax served locally).

Build: ``sphinx-build -W -b html docs docs/_build/html``; ``tests/test_docs.py`` does so in strict mode.
The reference tables (settings, each algorithm's options, the command line) are generated into
``docs/_generated/`` from the dataclasses and the parser at every build, so they cannot drift.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

from reference import write_reference  # noqa: E402

write_reference(HERE / "_generated")

project = "eapo-gym"
author = "eapo-gym contributors"
copyright = "2026, eapo-gym contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static: equations render without a network
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 4
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated", "_ext", "_static"]
root_doc = "index"
smartquotes = False  # "--flag" in help text stays two hyphens

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # no bare list of parameter types
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "furo"
html_title = "eapo-gym"
html_static_path = ["_static"]
html_css_files = ["tables.css"]
autodoc_inherit_docstrings = False  # Gymnasium's own docstrings are not ours to build strictly
