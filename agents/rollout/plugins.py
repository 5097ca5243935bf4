"""Built-in plugins found by reading source files: the classes decorated with ``@decorator("name")``.

The agents' and the rollout backends' registries list their built-in members this way, so a new
algorithm or backend is one new file with a decorated class, and nothing is imported until used.
"""

from __future__ import annotations

import ast
from pathlib import Path


def decorated_classes(folder: Path, package: str, decorator: str) -> dict[str, str]:
    """``{name: module}`` of every class in ``folder/*.py`` decorated with ``@decorator("name")``,
    ``module`` being ``package.<file stem>``."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for call in node.decorator_list:
                if (
                    isinstance(call, ast.Call)
                    and getattr(call.func, "id", None) == decorator
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    found[call.args[0].value] = f"{package}.{path.stem}"
    return found
