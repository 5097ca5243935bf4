"""Held-out evaluation: avg@k, unbiased pass@k, variance across samples, per difficulty.

By default the experts are off (every query is declined), as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb

import numpy as np
import torch

from eapo_gym.env import ExpertMathEnv

from ..rollout.backend import SamplingConfig, make_backend
from ..rollout.play import play_episodes
from .config import TrainConfig
from .environments import make_vector_env
from .policy import autocast


def pass_at_k(samples: int, correct: int, k: int) -> float:
    """Unbiased estimator 1 - C(n - c, k) / C(n, k) (Chen et al., 2021)."""
    if samples - correct < k:
        return 1.0
    return 1.0 - comb(samples - correct, k) / comb(samples, k)


def summarise(correct: np.ndarray, k: int) -> dict[str, float]:
    """Metrics of a [problems, samples] 0/1 matrix.

    avg_at_k: mean accuracy over all samples; avg_at_k_var: variance of the
    per-sample-index accuracy (the paper's "var"); pass_at_k: mean unbiased pass@k.
    """
    samples = correct.shape[1]
    return {
        "avg_at_k": float(correct.mean()),
        "avg_at_k_var": float(correct.mean(axis=0).var()),
        "pass_at_k": float(np.mean([pass_at_k(samples, int(c), min(k, samples)) for c in correct.sum(1)])),
    }


@torch.no_grad()
def evaluate(
    model,
    tokenizer,
    config: TrainConfig,
    k: int | None = None,
    problems: int | None = None,
    with_experts: bool = False,
    first_turn: Callable[[ExpertMathEnv], str] | None = None,
    batch_size: int = 128,
    consult: str | None = None,
    split: str | None = None,
) -> dict[str, float]:
    """Sample k attempts at the first ``problems`` problems of ``split`` (default ``config.eval_split``)
    at each evaluation difficulty.

    Without experts, ``consult`` (default ``config.eval_consult``) is ``locked``: the policy
    cannot write the query tag, as in the paper; or ``declined``: it may ask, and every query
    gets "unavailable". With experts every query is answered.
    """
    k = k or config.eval_k
    locked = not with_experts and (consult or config.eval_consult) == "locked"
    problems = problems or config.eval_problems
    model.eval()
    sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(config.seed)
    metrics: dict[str, float] = {}
    everything = []
    for difficulty in config.eval_difficulties or (None,):
        levels = () if difficulty is None else (difficulty,)
        acceptance = 1.0 if with_experts else 0.0
        envs = make_vector_env(
            config, min(batch_size, problems * k), split or config.eval_split, levels, acceptance
        )
        backend = make_backend(
            config.rollout_backend, model, tokenizer, envs.protocol, sampling, generator, locked
        )
        source = envs.problems
        jobs = [(p, s) for p in range(min(problems, len(source))) for s in range(k)]
        episodes = []
        for start in range(0, len(jobs), envs.num_envs):
            chunk = jobs[start : start + envs.num_envs]
            seeds = [p * 1000 + s for p, s in chunk]
            problem_ids = [source[p].id for p, _ in chunk]
            with autocast(device, config.dtype):
                episodes += play_episodes(
                    backend,
                    tokenizer,
                    envs,
                    seeds,
                    problem_ids,
                    config.max_context,
                    first_turn,
                    lock_queries=locked,
                )
        correct = np.array([bool(e.info.get("correct")) for e in episodes], dtype=float).reshape(-1, k)
        if difficulty is not None:
            metrics.update({f"eval/d{difficulty}/{name}": v for name, v in summarise(correct, k).items()})
        everything += episodes
    correct = np.array([bool(e.info.get("correct")) for e in everything], dtype=float).reshape(-1, k)
    metrics.update({f"eval/{name}": value for name, value in summarise(correct, k).items()})
    count = len(everything)
    metrics["eval/format_rate"] = sum(bool(e.info.get("well_formed")) for e in everything) / count
    metrics["eval/response_tokens"] = sum(e.policy_token_count for e in everything) / count
    metrics["eval/consult_rate"] = sum(e.info.get("consults", 0) > 0 for e in everything) / count
    metrics["eval/expert_calls"] = float(sum(e.info.get("accepted", 0) for e in everything))
    metrics["eval/expert_chars"] = float(sum(e.info.get("expert_chars", 0) for e in everything))
    return metrics
