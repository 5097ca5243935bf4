"""The site's reference tables, generated from the code at every build so that they cannot drift.

- ``settings.md``: ``TrainConfig``'s shared fields (every agent's), one table per group;
- ``algorithms.md``: the built-in algorithms (the agent registry), each with its docstring's summary;
- ``options-ALGO.md``: each built-in algorithm's ``Options`` (via the agent registry), inherited fields
  included;
- ``cli-COMMAND.md``: every flag of each ``eapo-gym`` subcommand, from the parser itself (``train``'s
  and ``compare``'s flags are in turn generated from their dataclasses).

Names, types, defaults, bounds and help all come from the ``option(...)`` metadata of the fields.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from eapo_agents.cli import build_parser
from eapo_agents.training.config import _described, shared_fields
from eapo_agents.training.registry import agent_class, built_in, summary

ALGORITHM_PAGES = {"distill": "sft", "base": "baselines", "workflow": "baselines"}  # pages shared


def write_reference(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "settings.md", settings_tables())
    _write(out / "algorithms.md", algorithms_table())
    for algo in built_in():
        _write(out / f"options-{algo}.md", options_table(agent_class(algo).Options))
    parser = build_parser(with_train_options=True)
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for name, subparser in commands.choices.items():
        _write(out / f"cli-{name}.md", flags_table(subparser))


def _write(path: Path, text: str) -> None:
    """Write only on change, so that Sphinx rebuilds only the pages whose tables changed."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def algorithms_table() -> str:
    """One row per built-in algorithm, from the registry: its page, its docstring's summary, its file."""
    rows = ["| `--algo` | what it is | loss, in its module |", "|---|---|---|"]
    for algo, module in sorted(built_in().items()):
        page = ALGORITHM_PAGES.get(algo, algo)
        path = "agents/" + module.partition(".")[2].replace(".", "/") + ".py"
        rows.append(f"| [`{algo}`]({page}.md) | {_escape(summary(agent_class(algo)))} | `{path}` |")
    return "\n".join(rows) + "\n"


def settings_tables() -> str:
    groups: dict[str, list[dataclasses.Field]] = {}
    for spec in shared_fields():
        groups.setdefault(spec.metadata["group"], []).append(spec)
    return "".join(f"**{title}**\n\n{fields_table(specs)}\n" for title, specs in groups.items())


def options_table(options_type: type) -> str:
    specs = [spec for spec in dataclasses.fields(options_type) if "help" in spec.metadata]
    if not specs:
        return "No options of its own; the [shared settings](../training.md#settings) apply.\n"
    return fields_table(specs, owner=options_type)


def fields_table(specs: list[dataclasses.Field], owner: type | None = None) -> str:
    """One row per field: its flag (the YAML key is its name with underscores), default, rules, help."""
    header = "| flag | default | allowed | meaning |" + (" declared in |" if owner else "")
    rows = [header, "|---|---|---|---|" + ("---|" if owner else "")]
    for spec in specs:
        row = (
            f"| `--{spec.name.replace('_', '-')}` | {_code(_shown(spec.default))} "
            f"| {_escape(_allowed(spec))} | {_escape(spec.metadata['help'])} |"
        )
        if owner:
            row += f" `{_declared_in(owner, spec.name)}` |"
        rows.append(row)
    return "\n".join(rows) + "\n"


def flags_table(parser: argparse.ArgumentParser) -> str:
    rows = ["| flag | value | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if action.nargs == 0:
            value = "(a switch)"
        elif action.choices:
            value = " \\| ".join(f"`{choice}`" for choice in action.choices)
        else:
            value = f"`{action.metavar or action.dest.upper()}`"
        rows.append(f"| `{', '.join(action.option_strings)}` | {value} | {_escape(action.help or '')} |")
    return "\n".join(rows) + "\n"


def _allowed(spec: dataclasses.Field) -> str:
    choices = spec.metadata.get("choices")
    if choices:
        return "one of " + ", ".join(map(str, choices))
    return _described(type(spec.default), spec.metadata.get("bounds", (None, None, None)))


def _declared_in(owner: type, name: str) -> str:
    """The most basic class of ``owner``'s hierarchy that declares the field ``name``."""
    declaring = owner
    for base in owner.__mro__[1:]:
        if dataclasses.is_dataclass(base) and name in {spec.name for spec in dataclasses.fields(base)}:
            declaring = base
    return declaring.__name__


def _shown(value: object) -> str:
    if value in ("", ()):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _code(text: str) -> str:
    return f"`{text}`" if text else "empty"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
