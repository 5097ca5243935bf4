"""The tiny preset: a ~0.9M-parameter Qwen2 built from a config, warm-started by SFT, cached on disk.

The warm start trains on easy arithmetic (difficulty 1-2) with traces that
teach the whole protocol: a share of them consult the reference expert for
1-2 turns, continue from its (masked) replies and answer. After it the policy
solves easy problems often and difficulty 3 rarely, the sparse-reward regime
where the paper says experts matter. The result is cached under
``$EAPO_GYM_CACHE`` (default ``~/.cache/eapo-gym``), keyed by every setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from agents.config import TrainConfig
from agents.policy import TinyModelConfig, build_tiny_model, save_policy
from eapo_gym.tokenizer import load_tokenizer

TRACE_FORMAT = 1  # bump when teacher traces change, so cached warm starts are rebuilt

WARM_START = TrainConfig(
    algo="sft",
    problems="arithmetic",
    train_difficulties=(1, 2),
    eval_difficulties=(1, 2, 3),
    steps=600,
    lr=2e-3,
    sft_batch_size=64,
    consult_fraction=0.3,
    acceptance="constant:0.8",
    eval_every=10**9,
    save_every=10**9,
    eval_problems=50,
    eval_k=2,
    tensorboard=False,
)


def cache_root() -> Path:
    return Path(os.environ.get("EAPO_GYM_CACHE", Path.home() / ".cache" / "eapo-gym"))


def tiny_policy_path(
    warm_start: TrainConfig = WARM_START, cache: Path | None = None, model: TinyModelConfig | None = None
) -> Path:
    """The warm-started tiny policy's directory, trained on first use (minutes on 2 CPU cores)."""
    from agents.trainer import train

    tokenizer = load_tokenizer()
    model = model or TinyModelConfig()
    settings = {
        "model": dataclasses.asdict(model),
        "warm_start": {**warm_start.to_dict(), "out": "", "model": ""},
        "vocab": sorted(tokenizer.get_vocab().items()),
        "trace_format": TRACE_FORMAT,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = (cache or cache_root()) / f"tiny-{key}"
    if (path / "config.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        save_policy(build_tiny_model(tokenizer, model), tokenizer, Path(work) / "init")
        config = dataclasses.replace(warm_start, model=str(Path(work) / "init"), out=str(Path(work) / "run"))
        train(config)
        shutil.copy(
            Path(work) / "run" / "eval.json",
            Path(work) / "run" / "checkpoint" / "model" / "warm_start_eval.json",
        )
        try:
            (Path(work) / "run" / "checkpoint" / "model").replace(path)
        except OSError:
            if not (path / "config.json").exists():  # not a concurrent build that finished first
                raise
    return path
