"""The tiny preset: a ~0.9M-parameter Qwen2 built from a config, warm-started by SFT, cached on disk.

The warm start trains on easy arithmetic (difficulty 1-2: sums of two or three
two-digit numbers) for 750 SFT steps with traces that teach the whole
protocol: 30% of them consult the reference expert for 1-2 turns, continue
from its (masked) replies and answer. After it the policy solves difficulty 1
about 60% of the time and difficulty 2 about 19% (the sparse-reward regime
where the paper says experts matter); difficulty 3 (four terms, with
subtraction it never saw) almost never. It takes about 6 minutes on 2 CPU cores.
The result is cached under ``$EAPO_GYM_CACHE`` (default ``~/.cache/eapo-gym``),
keyed by the settings that differ from ``TrainConfig``'s defaults and ``TRACE_FORMAT``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from eapo_agents.algorithms.sft import SFTOptions
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.loop import train
from eapo_agents.training.policy import TinyModelConfig, build_tiny_model, save_policy
from eapo_gym.tokenizer import load_tokenizer

WARM_START_EVAL = "warm_start_eval.json"
TRACE_FORMAT = 2  # bump when teacher traces or SFT defaults change, so cached warm starts are rebuilt

WARM_START = TrainConfig(
    algo="sft",
    problems="arithmetic",
    train_difficulties=(1, 2),
    eval_difficulties=(1, 2, 3, 4),
    steps=750,
    lr=2e-3,
    eval_every=10**9,
    save_every=10**9,
    eval_problems=64,
    eval_k=4,
    tensorboard=False,
    options=SFTOptions(sft_batch_size=64, consult_fraction=0.3, trace_acceptance=0.8),
)
# The model expert of the comparison's ablation: a larger model trained longer on full solutions
# of every level the comparison uses, the analogue of the paper's stronger LLM expert.
EXPERT_MODEL = TinyModelConfig(hidden_size=192, num_layers=4, num_heads=4, intermediate_size=576)
EXPERT_TRAINING = WARM_START.replace(train_difficulties=(1, 2, 3), steps=1000, consult_fraction=0.0)


def cache_root() -> Path:
    return Path(os.environ.get("EAPO_GYM_CACHE", Path.home() / ".cache" / "eapo-gym"))


def _changed_fields(config: TrainConfig) -> dict:
    """The settings that differ from the defaults of its algorithm (new fields leave cache keys alone)."""
    default = TrainConfig(algo=config.algo).to_dict()
    return {name: value for name, value in config.to_dict().items() if value != default[name]}


def expert_model_path(cache: Path | None = None) -> Path:
    """The model expert's directory, trained on first use."""
    return tiny_policy_path(EXPERT_TRAINING, cache, EXPERT_MODEL)


def warm_start_accuracy(path: Path) -> dict[int, float]:
    """avg@k per difficulty of a cached policy, measured on the test split right after its training."""
    if not (path / WARM_START_EVAL).exists():
        raise FileNotFoundError(f"{path} has no {WARM_START_EVAL}; choose the training difficulty yourself")
    metrics = json.loads((path / WARM_START_EVAL).read_text())
    prefix, suffix = "eval/d", "/avg_at_k"
    return {
        int(name[len(prefix) : -len(suffix)]): value
        for name, value in metrics.items()
        if name.startswith(prefix) and name.endswith(suffix)
    }


def tiny_policy_path(
    warm_start: TrainConfig = WARM_START, cache: Path | None = None, model: TinyModelConfig | None = None
) -> Path:
    """The warm-started tiny policy's directory, trained on first use (minutes on 2 CPU cores)."""
    tokenizer = load_tokenizer()
    model = model or TinyModelConfig()
    settings = {
        "model": dataclasses.asdict(model),
        "warm_start": _changed_fields(warm_start.replace(out="", model="")),
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
        config = warm_start.replace(model=str(Path(work) / "init"), out=str(Path(work) / "run"))
        train(config)
        shutil.copy(
            Path(work) / "run" / "eval.json",
            Path(work) / "run" / "checkpoint" / "model" / WARM_START_EVAL,
        )
        try:
            (Path(work) / "run" / "checkpoint" / "model").replace(path)
        except OSError:
            if not (path / "config.json").exists():  # not a concurrent build that finished first
                raise
    return path
