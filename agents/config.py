"""Training configuration: one dataclass, overridable from a YAML file and the command line.

Every field is a ``--flag`` of ``eapo-gym train`` (underscores become dashes);
precedence is defaults < ``--config file.yaml`` < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    # --- run ---
    algo: str = "grpo"  # grpo | ppo | eapo | sft | distill | base | workflow | a registered custom agent
    preset: str = "tiny"  # tiny: the package's warm-started tiny model; ignored when --model is given
    model: str = ""  # local directory for from_pretrained; empty: the preset's model
    steps: int = 60  # policy updates
    seed: int = 0
    out: str = "runs/latest"
    resume: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    lora_rank: int = 0  # > 0: train a peft LoRA adapter instead of all weights
    # --- problems ---
    problems: str = "arithmetic"
    train_difficulties: tuple[int, ...] = (3,)
    eval_difficulties: tuple[int, ...] = (3, 4)
    # --- rollouts ---
    problems_per_step: int = 8
    group_size: int = 8  # G episodes per problem (GRPO/EAPO); PPO uses the same batch
    max_new_tokens: int = 48  # per turn
    max_context: int = 384  # prompt + all turns + replies, in tokens
    temperature: float = 1.0
    top_p: float = 1.0
    short_prompt: bool = True  # the problem alone as prompt (tiny models); False: with protocol instructions
    # --- optimisation ---
    lr: float = 2e-4
    grad_clip: float = 1.0
    epochs_per_batch: int = 1  # mu: gradient passes over each rollout batch
    micro_batch_size: int = 0  # most sequences per forward/backward (gradient accumulation); 0: no limit
    micro_batch_tokens: int = 2048  # most padded tokens per forward/backward, rows bucketed by length
    # --- GRPO / DAPO ---
    clip_low: float = 0.2
    clip_high: float = 0.28  # DAPO clip-higher
    kl_beta: float = 0.0  # KL to the frozen start policy; 0 loads no reference model
    scale_rewards: bool = True  # divide advantages by the group std (False: Dr. GRPO)
    loss_aggregation: str = "token"  # token | sequence | constant (Dr. GRPO)
    dynamic_sampling: bool = False  # drop groups whose rewards are all equal
    overlong: str = "filter"  # filter: cut-off episodes get no loss | none
    expert_token_coef: float = 0.0  # > 0: also learn the experts' reply tokens off-policy (LUFFY-style)
    expert_shaping: float = 0.1  # gamma of the off-policy shaping f(pi) = pi / (pi + gamma)
    # --- PPO ---
    gamma: float = 1.0
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    value_clip: float = 0.2
    critic: str = "head"  # head: value head on the policy trunk | separate: a small critic model
    # --- environment during training (EAPO's knobs) ---
    experts: str = "reference"  # comma-separated names
    expert_noise: float = 0.0  # reference expert: probability of a corrupted reply
    acceptance: str = "inverse"  # constant:<rho> | inverse | linear | exponential | cosine
    acceptance_scale: float = 1.0  # inverse: rho = min(1, scale / s)
    max_queries: int = 3  # K
    parallel_experts: bool = True
    consult_cost: float = 0.0
    max_turns: int = 10
    # --- supervised (sft, distill, warm start) ---
    sft_batch_size: int = 64
    consult_fraction: float = 0.0  # share of traces that consult the experts first
    # --- evaluation and logging ---
    eval_every: int = 20
    eval_problems: int = 64
    eval_k: int = 4
    save_every: int = 20
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def _parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def add_config_arguments(
    parser: argparse.ArgumentParser, help_by_field: dict[str, str] | None = None
) -> None:
    """One ``--flag`` per ``TrainConfig`` field (default ``None`` = not given)."""
    parser.add_argument("--config", help="YAML file of field: value pairs (flags override it)")
    for spec in dataclasses.fields(TrainConfig):
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        kind = {bool: _parse_bool, tuple: _parse_ints}.get(type(default), type(default))
        flag = "--" + spec.name.replace("_", "-")
        text = (help_by_field or {}).get(spec.name, "")
        parser.add_argument(
            flag, dest=spec.name, type=kind, default=None, help=f"{text} (default: {default})"
        )


def config_from_arguments(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(yaml.safe_load(Path(args.config).read_text()) or {})
    names = {spec.name for spec in dataclasses.fields(TrainConfig)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown config keys in {args.config}: {sorted(unknown)}")
    values.update({name: getattr(args, name) for name in names if getattr(args, name, None) is not None})
    for name in ("train_difficulties", "eval_difficulties"):
        if isinstance(values.get(name), list | int):
            values[name] = tuple(values[name]) if isinstance(values[name], list) else (values[name],)
    return TrainConfig(**values)
