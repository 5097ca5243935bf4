"""The layers hold: eapo_gym imports nothing of the agents, each layer of the agents imports only its own
and those below it (``LAYERS``), no import cycles, the environment runs without torch, and the package
installs next to openai-agents without either overwriting the other."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"eapo_gym": ROOT / "eapo_gym", "eapo_agents": ROOT / "agents"}


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module ``name`` imports, at any depth of the file (function bodies too): import
    statements and ``import_module`` calls with a literal name (``importlib.import_module`` too, and the
    relative form ``import_module(".x", "package")``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node.module or "", node.level, package)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif called := imported_by_call(node):
            literal, anchor = called
            stripped = literal.lstrip(".")
            targets = [absolute(stripped, len(literal) - len(stripped), anchor or package)]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def absolute(module: str, level: int, package: str) -> str:
    """The absolute name of ``module`` imported ``level`` dots deep from ``package`` (0: already absolute)."""
    parts = package.split(".")
    return ".".join([*parts[: len(parts) - level + 1], module]).strip(".") if level else module


def imported_by_call(node: ast.AST) -> tuple[str, str | None] | None:
    """The literal name and package of an ``import_module(name[, package])`` call, however the function
    is spelled; None for any other node, or a name that is not a literal."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    literals = [arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
                for arg in [*node.args, *(keyword.value for keyword in node.keywords)]]  # fmt: skip
    if function != "import_module" or literals[0] is None:
        return None
    return literals[0], (literals[1] if len(literals) > 1 else None)


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_the_environment_never_imports_the_agents():
    offending = {
        (name, target)
        for name, targets in import_graph().items()
        if name.startswith("eapo_gym")
        for target in targets
        if target.startswith("eapo_agents")
    }
    assert not offending


def test_no_import_cycles():
    graph = import_graph()
    assert "eapo_agents.algorithms.policy_gradient" in graph["eapo_agents.algorithms.grpo"]  # read at all
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                raise AssertionError(" -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


# Bottom to top: a module imports only modules of its own layer or of layers below it.
LAYERS = (
    "eapo_gym",
    "eapo_agents.rollout",
    "eapo_agents.training",
    "eapo_agents.algorithms",
    "eapo_agents.engines",
    "eapo_agents.experiments",
    "eapo_agents.cli",
    "eapo_agents",
)


def layer_of(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(f"{layer}."))


def test_import_module_calls_with_a_literal_name_are_imports(tmp_path):
    source = tmp_path / "loop.py"
    source.write_text(
        "import importlib\n"
        "from importlib import import_module\n"
        "def f():\n"
        "    import_module('eapo_agents.experiments.presets')\n"
        "    importlib.import_module('.grpo', 'eapo_agents.algorithms')\n"
        "    import_module(name)\n"
    )
    modules = module_files()
    found = imports_of("eapo_agents.training.loop", source, modules)
    assert found == {"eapo_agents.experiments.presets", "eapo_agents.algorithms.grpo"}


def test_each_module_imports_only_its_layer_or_those_below():
    graph = import_graph()
    unplaced = [name for name in graph if name != "eapo_agents" and LAYERS[layer_of(name)] == "eapo_agents"]
    assert not unplaced, "a new subpackage of eapo_agents needs its place in LAYERS"
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(name)
    )
    assert not upward


def test_the_environment_and_the_demo_run_without_torch():
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import gymnasium as gym, eapo_gym\n"
        "env = gym.make('EAPOMath-v0', problems='arithmetic', difficulty=1)\n"
        "env.reset(seed=0); env.step('<expert>a</expert>')\n"
        "tokens = gym.make('EAPOMath-v0', action_mode='token'); tokens.reset(seed=0)\n"
        "from eapo_agents.cli import main\n"
        "main(['demo', '--episodes', '3'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "with experts" in result.stdout


def test_installs_next_to_openai_agents_without_overwriting_either(tmp_path):
    """Both wheels into one environment: their files are disjoint and each top-level package is intact."""
    pip = [sys.executable, "-m", "pip", "-q"]
    download = subprocess.run(
        [*pip, "download", "--no-deps", "openai-agents==0.24.0", "-d", str(tmp_path / "wheels")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if download.returncode != 0:
        pytest.skip(f"PyPI unreachable: {download.stderr.strip()[-200:]}")
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheels"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheels = {path.name.split("-")[0]: path for path in (tmp_path / "wheels").glob("*.whl")}
    ours, theirs = (_files(wheels[name]) for name in ("eapo_gym", "openai_agents"))
    assert not ours & theirs
    assert {path.split("/")[0] for path in ours if "dist-info" not in path} == {"eapo_gym", "eapo_agents"}
    target = tmp_path / "site"
    for wheel in (wheels["openai_agents"], wheels["eapo_gym"]):  # theirs first, ours over it
        install = subprocess.run(
            [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
            capture_output=True,
            text=True,
        )
        assert install.returncode == 0, install.stderr[-2000:]
    with zipfile.ZipFile(wheels["openai_agents"]) as archive:
        assert (target / "agents" / "__init__.py").read_bytes() == archive.read("agents/__init__.py")
    check = "import eapo_agents.training.agent, eapo_gym; print(eapo_agents.__file__)"
    environment = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(str(target / "eapo_agents"))


def _files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}
