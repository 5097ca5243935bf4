"""The tiny preset: a warm-started ~0.9M-parameter Qwen2 and the model expert, shipped with the package.

A preset is a recipe of SFT stages. The warm start first learns to solve easy
arithmetic (difficulty 1-2: sums of two or three two-digit numbers) from plain
solutions for 750 steps, then learns to ask for 400 steps at half the learning
rate, with half of its traces consulting the reference expert for 1-3 turns of
sub-questions ("What is 54+57?"), continuing from its (masked) replies or alone
after "unavailable", and answering (``eapo_agents.rollout.teacher``). Mixing the
consulting traces in from the first step instead left the policy far weaker at
the arithmetic itself (d1 7% against 53% with plain traces, single runs). The
model expert is a larger tiny model trained on full solutions of levels 1-3.

Both are shipped as safetensors under ``weights/`` with a manifest of their
settings' key and file hashes, so every machine starts from identical weights
(CPU floating point differs between machines, so a rebuild elsewhere does not
reproduce them bit for bit). ``python -m eapo_agents.experiments.presets
--rebuild`` trains them again here, with one torch thread as the shipped ones
were, and rewrites ``weights/`` (about 20 minutes on a quiet CPU). A warm start
with other settings is built on first use and cached under ``$EAPO_GYM_CACHE``
(default ``~/.cache/eapo-gym``), keyed by the settings that differ from the
defaults and ``TRACE_FORMAT``.

The ``small`` preset is the same two-stage warm start for a GPU-sized policy (a 512 x 8 Qwen2 of
about 27M parameters, ``SMALL_MODEL``) with a model expert scaled with it (768 x 12, trained on
every level). Its weights are too large for git and are not shipped: ``eapo-gym warm-start
--preset small --device cuda`` trains both into the cache (or ``--out DIR``) and prints their
per-level accuracy. Its learning rates are a choice made before any run (halved from the tiny
preset's, as larger models want smaller steps); the README records what the recipe gave. The
reference expert reveals exact solution steps at every level, so it needs no scaling.
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

from eapo_gym.tokenizer import load_tokenizer

from ..algorithms.sft import SFTOptions
from ..training.config import SettingError, TrainConfig
from ..training.evaluation import evaluate
from ..training.loop import train
from ..training.policy import TinyModelConfig, build_tiny_model, load_policy, save_policy

SHIPPED = Path(__file__).parent / "weights"
MANIFEST = SHIPPED / "manifest.json"
REBUILD = "python -m eapo_agents.experiments.presets --rebuild"
WARM_START_EVAL = "warm_start_eval.json"
TRACE_FORMAT = 4  # bump when teacher traces or SFT defaults change, so cached warm starts are rebuilt

SOLVING = TrainConfig(
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
    options=SFTOptions(sft_batch_size=64, consult_fraction=0.0, trace_acceptance=0.8),
)
ASKING = SOLVING.replace(steps=400, lr=1e-3, consult_fraction=0.5)
WARM_START = (SOLVING, ASKING)
# The model expert of the comparison's ablation: a larger model trained longer on full solutions
# of every level the comparison uses, the analogue of the paper's stronger LLM expert.
EXPERT_MODEL = TinyModelConfig(hidden_size=192, num_layers=4, num_heads=4, intermediate_size=576)
EXPERT_TRAINING = (SOLVING.replace(train_difficulties=(1, 2, 3), steps=1000),)
PRESETS = {"tiny-policy": (WARM_START, TinyModelConfig()), "tiny-expert": (EXPERT_TRAINING, EXPERT_MODEL)}

SMALL_MODEL = TinyModelConfig(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=1536)
SMALL_EXPERT_MODEL = TinyModelConfig(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=2304)
SMALL_SOLVING = SOLVING.replace(lr=1e-3, eval_difficulties=(1, 2, 3, 4, 5))
SMALL_WARM_START = (SMALL_SOLVING, SMALL_SOLVING.replace(steps=400, lr=5e-4, consult_fraction=0.5))
SMALL_EXPERT_TRAINING = (SMALL_SOLVING.replace(train_difficulties=(1, 2, 3, 4, 5), steps=2000, lr=5e-4),)
# Presets trained on first use (not shipped): what ``--preset NAME`` and ``warm-start`` build.
BUILT_PRESETS = {
    "small-policy": (SMALL_WARM_START, SMALL_MODEL),
    "small-expert": (SMALL_EXPERT_TRAINING, SMALL_EXPERT_MODEL),
}
Recipe = tuple[TrainConfig, ...]


def cache_root() -> Path:
    return Path(os.environ.get("EAPO_GYM_CACHE", Path.home() / ".cache" / "eapo-gym"))


def _changed_fields(config: TrainConfig) -> dict:
    """The settings that differ from the defaults of its algorithm (new fields leave cache keys alone)."""
    default = TrainConfig(algo=config.algo).to_dict()
    return {name: value for name, value in config.to_dict().items() if value != default[name]}


def settings_key(recipe: Recipe, model: TinyModelConfig) -> str:
    """A short hash of everything that determines the trained weights."""
    settings = {
        # a field left at 0 (an unset option such as num_kv_heads) leaves the key as it was before the field
        "model": {name: value for name, value in dataclasses.asdict(model).items() if value},
        "stages": [_changed_fields(stage.replace(out="", model="")) for stage in recipe],
        "vocab": sorted(load_tokenizer().get_vocab().items()),
        "trace_format": TRACE_FORMAT,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def expert_model_path(cache: Path | None = None) -> Path:
    """The model expert's directory (shipped, or trained on first use)."""
    return tiny_policy_path(EXPERT_TRAINING, cache, EXPERT_MODEL)


def preset_names() -> list[str]:
    """The ``--preset`` names: each has a ``NAME-policy`` and a ``NAME-expert``."""
    return sorted({name.rsplit("-", 1)[0] for name in {**PRESETS, **BUILT_PRESETS}})


def check_preset(name: str) -> None:
    """``SettingError`` unless ``name`` is a preset."""
    if name not in preset_names():
        raise SettingError("preset", f"not a preset; choose one of {', '.join(preset_names())}", name)


def preset_path(
    preset: str,
    role: str = "policy",
    cache: Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    build_missing: bool = True,
) -> Path:
    """The directory of a preset's warm-started policy or its model expert (``role``): shipped, or
    trained on ``device`` on first use and cached (else, without ``build_missing``, a ``SettingError``)."""
    check_preset(preset)
    recipe, model = {**PRESETS, **BUILT_PRESETS}[f"{preset}-{role}"]
    return tiny_policy_path(recipe, cache, model, device, dtype, prefix=preset, build_missing=build_missing)


def with_starting_model(config: TrainConfig) -> TrainConfig:
    """``config`` with ``model`` set to its preset's warm-started policy (trained on ``config.device`` on
    first use) when it names none; unchanged when it does or resumes (a run resumes from its checkpoint).
    Under a multi-process launcher every process resolves it, so a preset not yet built is refused."""
    if config.model or config.resume:
        return config
    alone = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    policy = preset_path(config.preset, "policy", None, config.device, config.dtype, build_missing=alone)
    return config.replace(model=str(policy))


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
    recipe: Recipe = WARM_START,
    cache: Path | None = None,
    model: TinyModelConfig | None = None,
    device: str = "auto",
    dtype: str = "auto",
    prefix: str = "tiny",
    build_missing: bool = True,
) -> Path:
    """The warm-started policy's directory: the shipped one for the default recipe, otherwise
    trained on ``device`` on first use (minutes on 2 CPU cores for the tiny model) and cached;
    without ``build_missing``, a ``SettingError`` names the command that builds it."""
    model = model or TinyModelConfig()
    key = settings_key(recipe, model)
    shipped = shipped_path(key)
    if shipped is not None:
        return shipped
    path = (cache or cache_root()) / f"{prefix}-{key}"
    if not (path / "config.json").exists():
        if not build_missing:
            reason = f"not built here yet (eapo-gym warm-start --preset {prefix} builds it once)"
            raise SettingError("preset", reason, prefix)
        build(recipe, model, path, device, dtype)
    return path


def build(
    recipe: Recipe, model: TinyModelConfig, path: Path, device: str = "auto", dtype: str = "auto"
) -> None:
    """Train a policy of shape ``model`` from scratch through the recipe's stages into ``path`` on
    ``device``, with its accuracy on both splits beside it."""
    tokenizer = load_tokenizer()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        trained = Path(work) / "init"
        save_policy(build_tiny_model(tokenizer, model), tokenizer, trained)
        for number, stage in enumerate(recipe):
            config = stage.replace(
                model=str(trained), out=str(Path(work) / f"stage{number}"), device=device, dtype=dtype
            )
            test = train(config)
            trained = Path(config.out) / "checkpoint" / "model"
        train_split = evaluate(*load_policy(trained, device, dtype), config, split="train")
        (trained / WARM_START_EVAL).write_text(json.dumps({"test": test, "train": train_split}, indent=2))
        try:
            trained.replace(path)
        except OSError:
            if not (path / "config.json").exists():  # not a concurrent build that finished first
                raise


def rebuild_shipped(names: list[str]) -> None:
    """Train the named presets again and rewrite their part of ``weights/`` and the manifest."""
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for name in names:
        recipe, model = PRESETS[name]
        with tempfile.TemporaryDirectory() as work:
            built = Path(work) / name
            build(recipe, model, built)
            shutil.rmtree(SHIPPED / name, ignore_errors=True)
            shutil.copytree(built, SHIPPED / name)
        manifest[name] = {
            "key": settings_key(recipe, model),
            "sha256": {file.name: file_sha256(file) for file in sorted((SHIPPED / name).iterdir())},
        }
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"{name}: {SHIPPED / name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rebuild", action="store_true", help="train the shipped presets again (about 25 min)"
    )
    parser.add_argument("--only", choices=sorted(PRESETS), action="append", help="rebuild only this preset")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (results depend on it; shipped: 1)"
    )
    args = parser.parse_args()
    if args.rebuild:
        import torch

        torch.set_num_threads(args.threads)
        rebuild_shipped(args.only or sorted(PRESETS))
    else:
        print(json.dumps(json.loads(MANIFEST.read_text()), indent=2))


if __name__ == "__main__":
    main()
