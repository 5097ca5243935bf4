"""``eapo-gym train`` and ``eapo-gym eval``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from pathlib import Path

from agents.config import TrainConfig, add_config_arguments, config_from_arguments

FLAG_HELP = {
    "algo": "grpo | ppo | eapo | sft | distill | base | workflow, or a registered custom agent",
    "preset": "tiny: the package's warm-started ~1M-parameter model (built and cached on first use)",
    "model": "local model directory to start from (from_pretrained), instead of the preset",
    "steps": "number of policy updates",
    "out": "run directory: metrics.jsonl, tensorboard/, checkpoint/, eval.json",
    "resume": "continue from DIR/checkpoint exactly where it stopped",
    "acceptance": "rho during training: inverse (1/s, the paper's), constant:R, linear, exponential, cosine",
}


def add_commands(commands: argparse._SubParsersAction) -> None:
    train_parser = commands.add_parser(
        "train",
        help="train a policy (GRPO, PPO, EAPO, SFT, distill) on the environment",
        description="Train a policy. Every TrainConfig field is a flag; --config FILE.yaml sets many.",
    )
    train_parser.add_argument(
        "--plugin", action="append", default=[], help="module to import (registers agents)"
    )
    add_config_arguments(train_parser, FLAG_HELP)
    train_parser.set_defaults(handler=run_train)

    eval_parser = commands.add_parser(
        "eval", help="evaluate a checkpoint: avg@k, pass@k, variance, per difficulty, experts off"
    )
    eval_parser.add_argument("--checkpoint", required=True, help="a run directory or a model directory")
    eval_parser.add_argument("--k", type=int, default=8, help="samples per problem")
    eval_parser.add_argument("--problems", type=int, default=None, help="test problems per difficulty")
    eval_parser.add_argument("--difficulties", default=None, help="comma-separated, e.g. 3,4")
    eval_parser.add_argument("--with-experts", action="store_true", help="experts answer every query")
    eval_parser.add_argument(
        "--json", dest="json_path", help="where to write the metrics (default: DIR/eval_k{K}.json)"
    )
    eval_parser.set_defaults(handler=run_eval)

    compare_parser = commands.add_parser(
        "compare",
        help="the paper's table at small scale: base, sft, workflow, distill, GRPO, PPO, EAPO and ablations",
        description="Train every method from the same warm-started tiny policy and compare them held out, "
        "experts off. Writes benchmarks/results/compare.{json,md} and PNG plots (compare_quick.* with "
        "--quick). Finished runs are reused, so an interrupted comparison resumes.",
    )
    compare_parser.add_argument(
        "--quick", action="store_true", help="one seed of base, sft, workflow, grpo and eapo (minutes)"
    )
    compare_parser.add_argument("--seeds", type=_ints, help="comma-separated (default 0,1,2; quick: 0)")
    compare_parser.add_argument("--methods", type=_names, help="comma-separated subset of the table's rows")
    compare_parser.add_argument("--steps", type=int, help="policy updates per method (default 40)")
    compare_parser.add_argument("--train-difficulty", type=int, help="default: picked from the warm start")
    compare_parser.add_argument("--eval-k", type=int, help="samples per test problem (default 8)")
    compare_parser.add_argument("--eval-problems", type=int, help="test problems per level (default 32)")
    compare_parser.add_argument("--eval-every", type=int, help="updates between evaluations (default 10)")
    compare_parser.add_argument("--lr", type=float, help="RL learning rate (default 1e-4)")
    compare_parser.add_argument("--workers", type=int, help="runs in parallel (default 2)")
    compare_parser.add_argument("--out", help="run directories (default runs/compare)")
    compare_parser.add_argument(
        "--results", help="where the JSON, table and plots go (default benchmarks/results)"
    )
    compare_parser.set_defaults(handler=run_compare_command)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def run_compare_command(args: argparse.Namespace) -> dict:
    from agents.compare import CompareConfig, run_compare

    names = [spec.name for spec in dataclasses.fields(CompareConfig) if spec.name != "quick"]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    compare = CompareConfig.quick_preset(**given) if args.quick else CompareConfig(**given)
    result = run_compare(compare)
    print(Path(compare.results, "compare_quick.md" if args.quick else "compare.md").read_text())
    return result


def run_train(args: argparse.Namespace) -> dict:
    for module in args.plugin:
        importlib.import_module(module)
    from agents.trainer import train

    return train(config_from_arguments(args))


def run_eval(args: argparse.Namespace) -> dict:
    from agents.evaluation import evaluate
    from agents.policy import load_policy

    directory = Path(args.checkpoint)
    model_path = (
        directory / "checkpoint" / "model" if (directory / "checkpoint" / "model").exists() else directory
    )
    config = TrainConfig()
    if (directory / "config.json").exists():
        config = TrainConfig(**{**json.loads((directory / "config.json").read_text())})
        config = dataclasses.replace(config, eval_difficulties=tuple(config.eval_difficulties))
    if args.difficulties:
        config = dataclasses.replace(
            config, eval_difficulties=tuple(int(d) for d in args.difficulties.split(","))
        )
    model, tokenizer = load_policy(model_path, config.device, config.dtype)
    metrics = evaluate(
        model, tokenizer, config, k=args.k, problems=args.problems, with_experts=args.with_experts
    )
    for name, value in metrics.items():
        print(f"{name:<32}{value:.4f}")
    path = Path(args.json_path) if args.json_path else directory / f"eval_k{args.k}.json"
    path.write_text(json.dumps(metrics, indent=2))
    return metrics
