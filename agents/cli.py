"""The ``eapo-gym`` command: ``demo``, ``train``, ``eval``, ``compare`` and ``warm-start``.

Every subcommand takes ``--plugin MODULE_OR_FILE`` (repeatable): it is imported
first, so the agents and experts it registers can be named. A bad name or value
(a flag, a ``--config`` key, a model or checkpoint directory) fails with one line
that names it, the value and what is allowed, with exit status 2, before any
model loads or any file is written; the rules live on the settings' dataclasses
(``eapo_agents.training.config``). tests/test_cli_errors.py holds the table of bad
inputs and their lines. A directory that holds a run is continued (``--resume``) or
replaced (``--overwrite``) only when asked. A run stopped by a NaN or infinite loss
or gradient, or by experts that never answer, exits 1; one stopped by SIGTERM or
SIGINT (after checkpointing its finished updates) exits 128 + the signal's number.
Heavy imports (torch, the agents) happen inside the handlers, so ``eapo-gym demo``
runs with the environment alone; the other commands need the ``train`` extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .training.config import SettingError, TrainConfig, shared_fields
from .training.registry import agent_class, agent_names
from .training.stopping import ExpertsFailing, NonFiniteError, TrainingStopped

FLAG = "flag"  # the source of a value given on the command line
TRAIN_EXTRA = ("torch", "accelerate", "trl", "yaml", "matplotlib", "tensorboard")  # pyproject's [train]


class UsageError(Exception):
    """A mistake in the command line or a config file, reported as one line."""


class OneLineParser(argparse.ArgumentParser):
    """Reports a usage error as one line (``eapo-gym train: error: ...``) instead of the usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    parser = OneLineParser(prog="eapo-gym")
    try:
        for plugin in _plugins(argv):
            load_plugin(plugin)
        parser = build_parser(with_train_options=command in ("train", "compare"))
        args = parser.parse_args(argv)
        if args.command != "demo":
            check_train_extra()
        result = args.handler(args)
    except UsageError as error:
        parser.exit(2, f"eapo-gym {command}: error: {error}\n")
    except TrainingStopped as stopped:
        parser.exit(128 + stopped.signum, f"eapo-gym {command}: {stopped}\n")
    except (NonFiniteError, ExpertsFailing) as error:
        parser.exit(1, f"eapo-gym {command}: stopped: {error}\n")
    if getattr(args, "json_path", None):
        Path(args.json_path).write_text(json.dumps(result, indent=2))


def check_train_extra() -> None:
    """Every command but ``demo`` needs the ``train`` extra: one line naming it if a module is missing."""
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"needs the train extra (missing: {', '.join(missing)}); install it with "
            'pip install "eapo-gym[train]"'
        )


def build_parser(with_train_options: bool = True) -> argparse.ArgumentParser:
    """The command's parser; ``with_train_options`` adds the flags generated from the settings' dataclasses
    (``train``'s and ``compare``'s), which imports the agents (torch)."""
    parser = OneLineParser(
        prog="eapo-gym", description="Expert-Assisted Policy Optimization: environment, agents, comparison."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    demo = commands.add_parser(
        "demo", help="a rule-based policy plays problems alone and with experts (seconds)"
    )
    demo.add_argument("--episodes", type=_at_least(1), default=200, help="episodes per policy")
    demo.add_argument("--problems", default="mixed", help="problem source: a generator name, champ or a file")
    demo.add_argument(
        "--difficulty", type=int, default=None, help="level of leveled sources, 1-5 (default: all)"
    )
    demo.add_argument("--acceptance", type=float, default=0.7, help="probability that a query is answered")
    demo.add_argument("--seed", type=_at_least(0), default=0, help="seed of the first episode")
    demo.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    demo.set_defaults(handler=run_demo)

    train = commands.add_parser(
        "train",
        help="train a policy (GRPO, PPO, EAPO, SFT, distill, or a plugin agent) on the environment",
        description="Train a policy. Every setting is a flag, grouped below by what it belongs to; "
        "--config FILE.yaml sets many (flags override it). A run's config.json is a valid --config.",
    )
    train.add_argument("--config", help="YAML file of setting: value pairs (flags override it)")
    if with_train_options:
        add_setting_flags(train)
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("eval", help="evaluate a run or a model directory held out: avg@k, pass@k")
    evaluate.add_argument(
        "--checkpoint", required=True, help="a run directory (--out of train) or a model directory"
    )
    evaluate.add_argument("--k", type=int, default=8, help="samples per problem")
    evaluate.add_argument("--problems", type=int, default=None, help="test problems per level")
    evaluate.add_argument(
        "--difficulties", type=_ints, default=None, help="levels, comma-separated, e.g. 3,4"
    )
    evaluate.add_argument("--with-experts", action="store_true", help="experts answer every query")
    evaluate.add_argument(
        "--consult",
        choices=("locked", "declined"),
        default=None,
        help="without experts: locked (the query tag cannot be written) or declined (default: the run's)",
    )
    evaluate.add_argument("--experts", default=None, help="experts for --with-experts (default: the run's)")
    evaluate.add_argument(
        "--out", help="directory for eval_k{K}.json (default: the run directory; a model directory: none)"
    )
    evaluate.add_argument("--json", dest="json_path", help="also write the metrics to this JSON file")
    add_shared_flags(evaluate, "device", "dtype", "hub_kernels")
    evaluate.set_defaults(handler=run_eval)

    compare = commands.add_parser(
        "compare",
        help="the paper's table at small scale: base, sft, workflow, distill, GRPO, PPO, EAPO and ablations",
        description="Train every method from the same warm-started tiny policy and compare them held out, "
        "experts off. Writes compare.{json,md} and PNG plots (compare_quick.* with --quick) to --results. "
        "Finished runs are reused and stopped ones resume, so an interrupted comparison continues; a run "
        "in --out with other settings is refused unless --overwrite.",
    )
    compare.add_argument(
        "--quick", action="store_true", help="one seed of base, sft, workflow, grpo and eapo"
    )
    compare.add_argument(
        "--preset",
        default="tiny",
        help="starting policy and model expert: tiny (shipped) or small (GPU-sized: base, grpo and eapo "
        "over seeds 0,1 by default; eapo-gym warm-start builds it)",
    )
    compare.add_argument("--methods", type=_names, help="comma-separated subset of the table's rows")
    if with_train_options:
        add_compare_flags(compare)
    add_shared_flags(compare, "device", "dtype")
    compare.set_defaults(handler=run_compare)

    warm_start = commands.add_parser(
        "warm-start",
        help="train a preset's starting policy and model expert (SFT: solve, then ask) and print their "
        "accuracy per level",
        description="Build a preset's warm start where compare --preset and train --preset find it "
        "(the cache, $EAPO_GYM_CACHE) or under --out; a finished build is reused. The tiny preset is "
        "shipped; small takes minutes on a GPU and hours on a CPU.",
    )
    warm_start.add_argument("--preset", default="small", help="tiny or small (default small)")
    warm_start.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    warm_start.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32")
    warm_start.add_argument("--out", help="directory for the weights (default: the cache)")
    warm_start.set_defaults(handler=run_warm_start)

    for subcommand in (demo, train, evaluate, compare, warm_start):
        subcommand.add_argument(
            "--plugin",
            action="append",
            default=[],
            help="module or .py file to import first (registers agents, experts)",
        )
    return parser


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per shared setting, grouped by topic, then one group per algorithm's options."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in shared_fields():
        title = spec.metadata["group"]
        group = groups.setdefault(title, parser.add_argument_group(f"{title} settings"))
        _add_flag(group, spec)
    for options_type, algos in _options_types().items():
        title = f"{options_type.__name__} (--algo {', '.join(algos)})"
        group = parser.add_argument_group(title, (options_type.__doc__ or "").strip())
        inherited = {spec.name for base in options_type.__bases__ for spec in _fields_of(base)}
        for spec in _fields_of(options_type):
            if spec.name not in inherited:
                _add_flag(group, spec)


def add_compare_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``CompareConfig`` field that carries its rules (``option``), help and default from it."""
    from .experiments.compare import CompareConfig

    for spec in dataclasses.fields(CompareConfig):
        if "help" in spec.metadata:
            _add_flag(parser, spec)


def add_shared_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """``train``'s flags for these shared settings, with the same help and rules."""
    for spec in shared_fields():
        if spec.name in names:
            _add_flag(parser, spec)


def _options_types() -> dict[type, list[str]]:
    """Each options dataclass and the algorithms that use it or a subclass of it, bases first."""
    users: dict[type, list[str]] = {}
    for name in agent_names():
        for options_type in reversed(agent_class(name).Options.__mro__):
            if dataclasses.is_dataclass(options_type) and _fields_of(options_type):
                users.setdefault(options_type, []).append(name)
    return users


def _fields_of(cls: type) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()


def _add_flag(group: argparse._ArgumentGroup | argparse.ArgumentParser, spec: dataclasses.Field) -> None:
    flag = "--" + spec.name.replace("_", "-")
    default = spec.default
    text = f"{spec.metadata.get('help', '')} (default: {_shown(default)})"
    if spec.name in ("resume", "overwrite", "tune"):
        group.add_argument(flag, action="store_true", default=None, help=spec.metadata["help"])
        return
    kind = {bool: _bool, tuple: _ints}.get(type(default), type(default))
    choices = spec.metadata.get("choices") or None
    group.add_argument(flag, dest=spec.name, type=kind, default=None, choices=choices, help=text)


def _shown(value: Any) -> str:
    if value in ("", ()):
        return "empty"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def run_demo(args: argparse.Namespace) -> dict:
    from eapo_gym.demo import demo_table, play_demo

    try:
        results, transcript = play_demo(
            args.problems, args.difficulty, args.acceptance, args.episodes, args.seed
        )
    except FileNotFoundError:
        raise UsageError(f"--problems {args.problems}: no such file") from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"Last episode (with experts):\n{transcript}\n\n{demo_table(results)}")
    return results


def run_train(args: argparse.Namespace) -> dict:
    config, sources = train_config(args)
    from .experiments.presets import with_starting_model
    from .training.loop import summary_line, train

    if config.engine == "trl":
        from .engines.trl_train import train

    try:
        config = with_starting_model(config)
        final = train(config)
    except SettingError as error:  # the model or the checkpoint, checked before anything is written
        raise UsageError(located(error, sources)) from None
    if final:  # the main process (the others return nothing under a multi-process launcher)
        print(summary_line(config, final))
        note = unlearned_levels_note(config)
        if note:
            print(note)
    return final


def train_config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, str]]:
    """Settings from the resumed run's config.json, then --config, then flags; checked before any work.
    Also where each came from (a file, or ``FLAG``), for error lines."""
    given = {
        spec.name: getattr(args, spec.name)
        for spec in _setting_fields()
        if getattr(args, spec.name, None) is not None
    }
    from .training.run import NOT_STORED, check_out

    values: dict[str, Any] = {}
    sources: dict[str, str] = {"out": FLAG}  # --out's default is a flag's too
    saved = Path(given.get("out", TrainConfig.out)) / "config.json"
    if given.get("resume"):
        if not saved.exists():
            raise UsageError(f"--resume: {saved.parent} has no checkpoint to resume (no config.json)")
        values = {name: value for name, value in _read_json(saved).items() if name not in NOT_STORED}
        sources.update(dict.fromkeys(values, str(saved)))
        if "algo" in given and given["algo"] != values.get("algo"):
            raise UsageError(
                f"--algo {given['algo']} conflicts with the run in {saved.parent}, "
                f"a {values.get('algo')} run (drop --algo to resume it)"
            )
    if args.config:
        loaded = _read_yaml(args.config)
        values.update(loaded)
        sources.update(dict.fromkeys(loaded, f"--config {args.config}"))
    values.update(given)
    sources.update(dict.fromkeys(given, FLAG))
    from .engines.contract import check_engine_settings

    try:
        config = TrainConfig.from_dict(values)
        if given.get("resume"):
            check_kept_settings(config, saved, sources)
        check_out(config)
        check_engine_settings(config)
        check_sources(config)
    except SettingError as error:
        raise UsageError(located(error, sources)) from None
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    return config, sources


def check_kept_settings(config: TrainConfig, saved: Path, sources: dict[str, str]) -> None:
    """A resume keeps the run's settings: ``SettingError`` for a flag or ``--config`` key that changes one,
    other than those a resume may change (``steps``, ``device``)."""
    from .training.run import NOT_STORED, RESUMABLE

    stored = TrainConfig.from_dict(
        {name: value for name, value in _read_json(saved).items() if name not in NOT_STORED}
    ).to_dict()
    for name, value in config.to_dict().items():
        changed = value != stored[name] and name not in (*RESUMABLE, *NOT_STORED)
        if changed and sources.get(name) != str(saved):
            raise SettingError(
                name,
                f"the run in {saved.parent} has {_shown(stored[name])}, and a resume keeps a run's settings "
                "(it may change --steps and --device only; --overwrite starts afresh)",
                _shown(value),
            )


def located(error: SettingError, sources: dict[str, str], flags: dict[str, str] | None = None) -> str:
    """The error as one line that says where its value came from: ``--flag VALUE: reason`` for a flag
    (``flags`` renames a setting's flag), ``FILE: key: reason`` for a file's key."""
    source = sources.get(error.key.split(", ")[0])
    shown = "" if error.value is None else f" {error.value}"
    if source == FLAG:
        flag = (flags or {}).get(error.key, "--" + error.key.replace("_", "-"))
        return f"{flag}{shown}: {error.reason}"
    return f"{source}: {error}" if source else str(error)


def unlearned_levels_note(config: TrainConfig) -> str:
    """A line for evaluation levels where the starting policy scored 0% (its ``warm_start_eval.json``),
    where a short run is expected to stay at 0%, naming the levels ``compare``'s rule would pick; or ""."""
    from .experiments.compare import pick_train_levels
    from .experiments.presets import WARM_START_EVAL, preset_path, warm_start_accuracy

    start = Path(config.model) if config.model else preset_path(config.preset)
    if not (start / WARM_START_EVAL).exists():
        return ""
    accuracy = warm_start_accuracy(start, config.eval_split)
    unlearned = [level for level in config.eval_difficulties if accuracy.get(level, 1.0) == 0.0]
    if not unlearned:
        return ""
    levels = pick_train_levels(warm_start_accuracy(start, "train"), learnable_max=0.5)
    return (
        f"note: the starting policy scored 0% at level{'s' * (len(unlearned) > 1)} "
        f"{', '.join(map(str, unlearned))} before training "
        f"({config.eval_split} split), so 0% there is expected from a short run; eapo-gym compare's rule "
        f"picks levels the policy can learn: --train-difficulties {','.join(map(str, levels))} "
        f"--eval-difficulties {','.join(map(str, (*levels, levels[-1] + 1)))}"
    )


def _setting_fields() -> list[dataclasses.Field]:
    return [
        *shared_fields(),
        *(spec for options_type in _options_types() for spec in _fields_of(options_type)),
    ]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: not a readable run configuration ({error})") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"{path}: expected setting: value pairs")
    return loaded


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"--config {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--config {path}: expected setting: value pairs")
    return loaded


def check_sources(config: TrainConfig) -> None:
    """The problem source, its levels and the experts exist (no model is loaded)."""
    from eapo_gym.experts import check_expert_spec
    from eapo_gym.problems import load_problems

    try:
        for spec in filter(None, config.experts.split(",")):
            check_expert_spec(spec)
    except ValueError as error:
        raise SettingError("experts", str(error)) from None
    try:
        load_problems(config.problems, "train", list(config.train_difficulties) or None)
        load_problems(config.problems, "test", list(config.eval_difficulties) or None)
    except FileNotFoundError:
        raise SettingError("problems", "no such file", config.problems) from None


EVAL_FLAGS = {"eval_k": "--k", "eval_problems": "--problems", "eval_difficulties": "--difficulties"}


def run_eval(args: argparse.Namespace) -> dict:
    """Evaluate a run's checkpoint or a model directory. Metrics go to the run directory, ``--out`` or
    ``--json``; never into a model directory."""
    directory = Path(args.checkpoint)
    run_model = directory / "checkpoint" / "model"
    is_run = (directory / "checkpoint").is_dir()
    model = run_model if is_run else directory
    changes = {
        "eval_k": args.k,
        "eval_problems": args.problems,
        "eval_difficulties": args.difficulties,
        "experts": args.experts,
        "device": args.device,
        "dtype": args.dtype,
        "hub_kernels": args.hub_kernels,
    }
    changes = {name: value for name, value in changes.items() if value is not None}
    from .training.policy import check_model_directory

    try:
        check_model_directory(model)
    except ValueError as error:
        reason = f"checkpoint/model: {error}" if is_run else str(error)
        if not is_run and reason.startswith("not a model directory"):
            reason = f"not a run directory (no checkpoint/) and {reason}"
        raise UsageError(f"--checkpoint {directory}: {reason}") from None
    from .training.run import NOT_STORED

    try:
        saved = _read_json(directory / "config.json") if is_run else {}
        config = TrainConfig.from_dict({name: v for name, v in saved.items() if name not in NOT_STORED})
        config = config.replace(model=str(model), **changes)
        check_sources(config)
    except SettingError as error:
        raise UsageError(located(error, dict.fromkeys(changes, FLAG), EVAL_FLAGS)) from None
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    from .training.evaluation import evaluate
    from .training.policy import load_policy

    model, tokenizer = load_policy(model, config.device, config.dtype, hub_kernels=config.hub_kernels)
    metrics = evaluate(model, tokenizer, config, with_experts=args.with_experts, consult=args.consult)
    for name, value in metrics.items():
        print(f"{name:<32}{value:.4f}")
    out = Path(args.out) if args.out else directory if is_run else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"eval_k{config.eval_k}.json").write_text(json.dumps(metrics, indent=2))
    elif not args.json_path:
        print(f"(not written: {directory} is a model directory; --out DIR or --json FILE keeps the metrics)")
    return metrics


def run_compare(args: argparse.Namespace) -> dict:
    from .experiments.compare import CompareConfig, run_compare
    from .experiments.tuning import run_tuning

    names = [spec.name for spec in dataclasses.fields(CompareConfig) if spec.name not in ("quick", "preset")]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    try:
        compare = CompareConfig.for_preset(args.preset, args.quick, **given)
        # its runs' directories are checked before any starts
        result = run_tuning(compare) if compare.tune else run_compare(compare)
    except SettingError as error:
        raise UsageError(located(error, dict.fromkeys([*given, "preset", "out"], FLAG))) from None
    print(Path(compare.results_dir, f"{compare.stem}.md").read_text())
    return result


def run_warm_start(args: argparse.Namespace) -> dict:
    from .experiments.presets import check_preset, preset_path, warm_start_accuracy

    try:
        check_preset(args.preset)
    except SettingError as error:
        raise UsageError(located(error, {"preset": FLAG})) from None
    cache = Path(args.out) if args.out else None
    result = {}
    for role in ("policy", "expert"):
        path = preset_path(args.preset, role, cache, args.device, args.dtype)
        accuracy = {split: warm_start_accuracy(path, split) for split in ("train", "test")}
        result[role] = {"path": str(path), "accuracy": accuracy}
        for split, by_level in accuracy.items():
            levels = "  ".join(f"d{level} {100 * value:.1f}%" for level, value in sorted(by_level.items()))
            print(f"{args.preset} {role} ({split} split, avg@k): {levels}")
        print(f"{args.preset} {role}: {path}")
    return result


def load_plugin(spec: str) -> None:
    """Import a module by name, or a ``.py`` file by path (registered under its file name)."""
    path = Path(spec)
    try:
        if path.suffix == ".py":
            if not path.exists():
                raise FileNotFoundError(f"no such file {spec}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except Exception as error:
        raise UsageError(f"--plugin {spec}: {type(error).__name__}: {error}") from None


def _plugins(argv: list[str]) -> list[str]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    return pre.parse_known_args(argv)[0].plugin


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _at_least(low: int) -> Callable[[str], int]:
    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return number


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


if __name__ == "__main__":
    main()
