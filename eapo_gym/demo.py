"""A seconds-long look at the environment: a rule-based policy plays problems alone and with the experts."""

from __future__ import annotations

import time

from tqdm import tqdm

from eapo_gym.env import ExpertMathEnv
from eapo_gym.scripted import ExpertFollower


def play_demo(
    problems: str = "mixed",
    difficulty: int | None = None,
    acceptance: float = 0.7,
    episodes: int = 200,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], str]:
    """Play ``episodes`` problems without and with expert help; per policy: reward, accuracy, consults,
    env steps per second; and the last episode's transcript."""
    results = {}
    for label, consult in (("alone", False), ("with experts", True)):
        env = ExpertMathEnv(problems=problems, difficulty=difficulty, acceptance=acceptance)
        policy = ExpertFollower(env.protocol, consult=consult, max_turns=env.max_turns)
        totals = {"reward": 0.0, "correct": 0, "consults": 0, "accepted": 0, "steps": 0}
        start = time.perf_counter()
        for episode in tqdm(range(episodes), desc=label, leave=False):
            observation, _ = env.reset(seed=seed + episode)
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
            "mean_reward": totals["reward"] / episodes,
            "accuracy": totals["correct"] / episodes,
            "consults_per_episode": totals["consults"] / episodes,
            "accepted_per_episode": totals["accepted"] / episodes,
            "env_steps_per_s": totals["steps"] / seconds,
        }
    return results, env.transcript


def demo_table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'policy':<14}{'reward':>8}{'accuracy':>10}{'consults':>10}{'accepted':>10}{'steps/s':>10}"]
    for label, row in results.items():
        lines.append(
            f"{label:<14}{row['mean_reward']:>8.3f}{row['accuracy']:>10.2%}{row['consults_per_episode']:>10.2f}"
            f"{row['accepted_per_episode']:>10.2f}{row['env_steps_per_s']:>10.0f}"
        )
    return "\n".join(lines)
