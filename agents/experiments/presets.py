"""The tiny preset: a warm-started ~0.9M-parameter Qwen2 and the model expert, shipped with the package.

The warm start trains on easy arithmetic (difficulty 1-2: sums of two or three
two-digit numbers) for 750 SFT steps with traces that teach the whole protocol:
30% of them consult the reference expert for 1-3 turns of sub-questions
("What is 54+57?"), continue from its (masked) replies or alone after
"unavailable", and answer (``eapo_agents.rollout.teacher``). The model expert is
a larger tiny model trained on full solutions of levels 1-3.

Both are shipped as safetensors under ``weights/`` with a manifest of their
settings' key and file hashes, so every machine starts from identical weights
(CPU floating point differs between machines, so a rebuild elsewhere does not
reproduce them bit for bit). ``python -m eapo_agents.experiments.presets
--rebuild`` trains them again here, with one torch thread as the shipped ones
were, and rewrites ``weights/`` (about 20 minutes on a quiet CPU). A warm start
with other settings is built on first use and cached under ``$EAPO_GYM_CACHE``
(default ``~/.cache/eapo-gym``), keyed by the settings that differ from the
defaults and ``TRACE_FORMAT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from eapo_agents.algorithms.sft import SFTOptions
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.evaluation import evaluate
from eapo_agents.training.loop import train
from eapo_agents.training.policy import TinyModelConfig, build_tiny_model, load_policy, save_policy
from eapo_gym.tokenizer import load_tokenizer

SHIPPED = Path(__file__).parent / "weights"
MANIFEST = SHIPPED / "manifest.json"
REBUILD = "python -m eapo_agents.experiments.presets --rebuild"
WARM_START_EVAL = "warm_start_eval.json"
TRACE_FORMAT = 3  # bump when teacher traces or SFT defaults change, so cached warm starts are rebuilt

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
PRESETS = {"tiny-policy": (WARM_START, TinyModelConfig()), "tiny-expert": (EXPERT_TRAINING, EXPERT_MODEL)}


def cache_root() -> Path:
    return Path(os.environ.get("EAPO_GYM_CACHE", Path.home() / ".cache" / "eapo-gym"))


def _changed_fields(config: TrainConfig) -> dict:
    """The settings that differ from the defaults of its algorithm (new fields leave cache keys alone)."""
    default = TrainConfig(algo=config.algo).to_dict()
    return {name: value for name, value in config.to_dict().items() if value != default[name]}


def settings_key(warm_start: TrainConfig, model: TinyModelConfig) -> str:
    """A short hash of everything that determines the trained weights."""
    settings = {
        "model": dataclasses.asdict(model),
        "warm_start": _changed_fields(warm_start.replace(out="", model="")),
        "vocab": sorted(load_tokenizer().get_vocab().items()),
        "trace_format": TRACE_FORMAT,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def expert_model_path(cache: Path | None = None) -> Path:
    """The model expert's directory (shipped, or trained on first use)."""
    return tiny_policy_path(EXPERT_TRAINING, cache, EXPERT_MODEL)


def warm_start_accuracy(path: Path, split: str = "test") -> dict[int, float]:
    """avg@k per difficulty of a preset policy on ``split``, measured right after its training."""
    if not (path / WARM_START_EVAL).exists():
        raise FileNotFoundError(f"{path} has no {WARM_START_EVAL}; choose the training difficulty yourself")
    metrics = json.loads((path / WARM_START_EVAL).read_text())[split]
    prefix, suffix = "eval/d", "/avg_at_k"
    return {
        int(name[len(prefix) : -len(suffix)]): value
        for name, value in metrics.items()
        if name.startswith(prefix) and name.endswith(suffix)
    }


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_path(key: str) -> Path | None:
    """The shipped directory built with settings ``key``, after checking its files' hashes."""
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for name, entry in manifest.items():
        if entry["key"] == key:
            for file, digest in entry["sha256"].items():
                if not (SHIPPED / name / file).exists() or file_sha256(SHIPPED / name / file) != digest:
                    raise RuntimeError(
                        f"shipped weights {SHIPPED / name / file} fail their hash check; {REBUILD}"
                    )
            return SHIPPED / name
    return None


def tiny_policy_path(
    warm_start: TrainConfig = WARM_START, cache: Path | None = None, model: TinyModelConfig | None = None
) -> Path:
    """The warm-started tiny policy's directory: the shipped one for the default settings, otherwise
    trained on first use (minutes on 2 CPU cores) and cached."""
    model = model or TinyModelConfig()
    key = settings_key(warm_start, model)
    shipped = shipped_path(key)
    if shipped is not None:
        return shipped
    path = (cache or cache_root()) / f"tiny-{key}"
    if not (path / "config.json").exists():
        build(warm_start, model, path)
    return path


def build(warm_start: TrainConfig, model: TinyModelConfig, path: Path) -> None:
    """Train a tiny policy from scratch into ``path``, with its accuracy on both splits beside it."""
    tokenizer = load_tokenizer()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        save_policy(build_tiny_model(tokenizer, model), tokenizer, Path(work) / "init")
        config = warm_start.replace(model=str(Path(work) / "init"), out=str(Path(work) / "run"))
        test = train(config)
        trained = Path(work) / "run" / "checkpoint" / "model"
        train_split = evaluate(*load_policy(trained), config, split="train")
        (trained / WARM_START_EVAL).write_text(json.dumps({"test": test, "train": train_split}, indent=2))
        try:
            trained.replace(path)
        except OSError:
            if not (path / "config.json").exists():  # not a concurrent build that finished first
                raise


def rebuild_shipped() -> None:
    """Train every preset again and rewrite ``weights/`` and its manifest."""
    manifest = {}
    for name, (warm_start, model) in PRESETS.items():
        with tempfile.TemporaryDirectory() as work:
            built = Path(work) / name
            build(warm_start, model, built)
            shutil.rmtree(SHIPPED / name, ignore_errors=True)
            shutil.copytree(built, SHIPPED / name)
        manifest[name] = {
            "key": settings_key(warm_start, model),
            "sha256": {file.name: file_sha256(file) for file in sorted((SHIPPED / name).iterdir())},
        }
        print(f"{name}: {SHIPPED / name}")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rebuild", action="store_true", help="train the shipped presets again (about 16 min)"
    )
    if parser.parse_args().rebuild:
        rebuild_shipped()
    else:
        print(json.dumps(json.loads(MANIFEST.read_text()), indent=2))


if __name__ == "__main__":
    main()
