"""The ``eapo-gym`` command line."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from tqdm import tqdm


def demo(args: argparse.Namespace) -> dict:
    """Play episodes with a rule-based policy, with and without expert help, and report."""
    from eapo_gym.env import ExpertMathEnv
    from eapo_gym.scripted import ExpertFollower

    results = {}
    for label, consult in (("alone", False), ("with experts", True)):
        env = ExpertMathEnv(problems=args.problems, difficulty=args.difficulty, acceptance=args.acceptance)
        policy = ExpertFollower(env.protocol, consult=consult, max_turns=env.max_turns)
        totals = {"reward": 0.0, "correct": 0, "consults": 0, "accepted": 0, "steps": 0}
        start = time.perf_counter()
        for episode in tqdm(range(args.episodes), desc=label, leave=False):
            observation, _ = env.reset(seed=args.seed + episode)
            done, turn = False, 0
            while not done:
                observation, reward, terminated, truncated, info = env.step(policy.act(observation, turn))
                done, turn = terminated or truncated, turn + 1
            totals["reward"] += reward
            totals["correct"] += info["correct"]
            totals["consults"] += info["consults"]
            totals["accepted"] += info["accepted"]
            totals["steps"] += turn
        seconds = time.perf_counter() - start
        results[label] = {
            "mean_reward": totals["reward"] / args.episodes,
            "accuracy": totals["correct"] / args.episodes,
            "consults_per_episode": totals["consults"] / args.episodes,
            "accepted_per_episode": totals["accepted"] / args.episodes,
            "env_steps_per_s": totals["steps"] / seconds,
        }
    print(f"Last episode ({label}):\n{env.transcript}\n")
    print(f"{'policy':<14}{'reward':>8}{'accuracy':>10}{'consults':>10}{'accepted':>10}{'steps/s':>10}")
    for label, row in results.items():
        print(
            f"{label:<14}{row['mean_reward']:>8.3f}{row['accuracy']:>10.2%}{row['consults_per_episode']:>10.2f}"
            f"{row['accepted_per_episode']:>10.2f}{row['env_steps_per_s']:>10.0f}"
        )
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eapo-gym", description="Expert-Assisted Policy Optimization: environment, agents, benchmarks."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="play episodes with a rule-based policy, alone and with expert help (no model, seconds)"
    )
    demo_parser.add_argument("--episodes", type=int, default=200, help="episodes per policy")
    demo_parser.add_argument("--problems", default="mixed", help="problem source (name, file path)")
    demo_parser.add_argument("--difficulty", type=int, default=2, help="difficulty of built-in problems, 1-5")
    demo_parser.add_argument("--acceptance", type=float, default=0.7, help="probability a query is answered")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    demo_parser.set_defaults(handler=demo)
    try:
        from agents.cli import add_commands
    except ImportError:  # the environment alone is installed
        return parser
    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    results = args.handler(args)
    if getattr(args, "json_path", None):
        with open(args.json_path, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
