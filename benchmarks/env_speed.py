"""Environment throughput: episodes and steps per second, single and vectorised, text and token mode.

    python -m benchmarks.env_speed [--episodes 2000]

Writes ``benchmarks/results/env_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym

import eapo_gym  # noqa: F401  (registers the environment ids)
from eapo_gym.env import ExpertMathEnv
from eapo_gym.scripted import ExpertFollower

RESULTS = Path(__file__).parent / "results" / "env_speed.json"


def answer_at_once(episodes: int, **env_kwargs) -> dict:
    """reset + one answering step per episode, no experts."""
    env = ExpertMathEnv(experts=None, **env_kwargs)
    start = time.perf_counter()
    for seed in range(episodes):
        env.reset(seed=seed)
        env.step("The answer is <answer>42</answer>")
    seconds = time.perf_counter() - start
    return {"episodes_per_s": episodes / seconds, "steps_per_s": 2 * episodes / seconds}


def follow_experts(episodes: int, **env_kwargs) -> dict:
    """Multi-turn episodes that consult the reference expert until its steps run out."""
    env = ExpertMathEnv(experts="reference", **env_kwargs)
    policy = ExpertFollower(env.protocol, max_turns=env.max_turns)
    steps = 0
    start = time.perf_counter()
    for seed in range(episodes):
        observation, _ = env.reset(seed=seed)
        done, turn = False, 0
        while not done:
            observation, _, terminated, truncated, _ = env.step(policy.act(observation, turn))
            done, turn = terminated or truncated, turn + 1
        steps += turn + 1
    seconds = time.perf_counter() - start
    return {"episodes_per_s": episodes / seconds, "steps_per_s": steps / seconds}


def token_steps(episodes: int, **env_kwargs) -> dict:
    """Token mode: one env step per token of an answering turn."""
    env = ExpertMathEnv(experts=None, action_mode="token", **env_kwargs)
    turn = env.tokenizer.encode("The answer is <answer>42</answer>", add_special_tokens=False)
    steps = 0
    start = time.perf_counter()
    for seed in range(episodes):
        env.reset(seed=seed)
        for token in turn:
            steps += 1
            if env.step(token)[2]:
                break
    seconds = time.perf_counter() - start
    return {"episodes_per_s": episodes / seconds, "steps_per_s": (steps + episodes) / seconds}


def vector(episodes: int, num_envs: int, **env_kwargs) -> dict:
    """SyncVectorEnv: every sub-env answers at once; autoreset steps are counted separately."""
    envs = gym.make_vec(
        "EAPOMath-v0", num_envs=num_envs, vectorization_mode="sync", experts=None, **env_kwargs
    )
    envs.reset(seed=0)
    actions = ("<answer>42</answer>",) * num_envs
    rounds = max(1, episodes // num_envs)
    start = time.perf_counter()
    for _ in range(rounds):
        envs.step(actions)  # answers: every episode ends
        envs.step(actions)  # next-step autoreset
    seconds = time.perf_counter() - start
    envs.close()
    return {"episodes_per_s": rounds * num_envs / seconds, "steps_per_s": 2 * rounds * num_envs / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--problems", default="mixed")
    args = parser.parse_args()
    kwargs = {"problems": args.problems, "difficulty": 2}
    rows = {
        "text, answer at once": answer_at_once(args.episodes, **kwargs),
        "text, consult reference expert": follow_experts(args.episodes // 4, **kwargs),
        "token mode, answer at once": token_steps(args.episodes // 10, **kwargs),
        "SyncVectorEnv(8), answer at once": vector(args.episodes, 8, **kwargs),
    }
    print(f"{'setting':<36}{'episodes/s':>12}{'steps/s':>12}")
    for name, row in rows.items():
        print(f"{name:<36}{row['episodes_per_s']:>12.0f}{row['steps_per_s']:>12.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"command": "python -m benchmarks.env_speed", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
