"""Our training settings as TRL's ``GRPOConfig`` (``--engine trl``, GRPO and EAPO).

| ours | ``GRPOConfig`` |
|---|---|
| ``problems_per_step`` x ``group_size`` | one generation batch per update, split over the processes |
| ``group_size`` | ``num_generations`` |
| ``micro_batch_size`` (0: all) | ``per_device_train_batch_size``, accumulating over the batch |
| ``max_new_tokens`` | ``max_completion_length`` (one turn) |
| ``temperature``, ``top_p`` | the same, ``top_k`` 0 |
| ``lr``, ``grad_clip`` | ``learning_rate`` (constant), ``max_grad_norm`` |
| (torch's AdamW, as ours) | ``weight_decay`` 0.01 |
| ``epochs_per_batch`` | ``num_iterations`` |
| ``clip_low``, ``clip_high`` | ``epsilon``, ``epsilon_high`` |
| ``kl_beta`` | ``beta`` |
| ``loss_aggregation`` token / sequence / constant | ``loss_type`` dapo / grpo / dr_grpo |
| ``scale_rewards`` | ``scale_rewards`` group / none |
| ``vllm``, ``vllm_server_url`` | ``use_vllm``, ``vllm_mode``, ``vllm_server_base_url`` |

Gradient checkpointing is off (TRL 1.x turns it on by default), and the dataset is not
shuffled: its rows are the problems our loop draws for each update (``training.run``), in
order. ``trl_args`` (a YAML file) sets any other ``GRPOConfig`` field and wins over the above.

The algorithm is the registered agent's: its options (above) and its training episodes
(``Agent.training_episodes``: consultation or the query lock, rho_s, the turn budget). This
engine honours the options in ``SUPPORTED_OPTIONS``; any other option of the algorithm left
off its default (``dynamic_sampling``, EAPO's ``help_only_failing`` and ``expert_token_coef``,
``old_logprobs``, ``loss_constant``) is an error, as is ``--resume``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from eapo_gym.protocol import DEFAULT_PROTOCOL

from ..training.config import TrainConfig
from ..training.policy import pick_device
from ..training.registry import agent_names
from .trl_generation import stop_ids

LOSS_TYPES = {"token": "dapo", "sequence": "grpo", "constant": "dr_grpo"}
# The algorithms' options this engine honours: mapped onto GRPOConfig, or played by our rollout.
SUPPORTED_OPTIONS = frozenset(
    {
        "epochs_per_batch", "clip_low", "clip_high", "kl_beta", "loss_aggregation", "overlong",
        "scale_rewards", "acceptance", "acceptance_scale", "turn_schedule", "schedule_steps",
    }
)  # fmt: skip


def check_engine_settings(config: TrainConfig) -> None:
    """Raise ``ValueError`` for settings the chosen engine cannot honour (before any model loads)."""
    if config.engine != "trl":
        if config.vllm != "off" or config.trl_args:
            raise ValueError("--vllm and --trl-args need --engine trl")
        return
    if config.algo not in (trained := agent_names(engine="trl")):
        raise ValueError(f"--engine trl trains {' or '.join(trained)}, not {config.algo}")
    for spec in dataclasses.fields(config.options):
        value = getattr(config.options, spec.name)
        if spec.name not in SUPPORTED_OPTIONS and value != spec.default:
            flag = f"--{spec.name.replace('_', '-')}"
            raise ValueError(f"{flag} {value} is not available with --engine trl (only its default)")
    if config.resume:
        raise ValueError("--resume is not available with --engine trl")
    if config.dtype == "float16" and pick_device(config.device).type != "cuda":
        raise ValueError("--dtype float16 with --engine trl needs CUDA (TRL's fp16 mixed precision); "
                         "use bfloat16 or float32 on the CPU")
    if config.vllm == "server" and not config.vllm_server_url:
        raise ValueError("--vllm server needs --vllm-server-url")
    if config.trl_args and not Path(config.trl_args).exists():
        raise ValueError(f"--trl-args {config.trl_args}: no such file")


def grpo_args(config: TrainConfig, processes: int, use_cpu: bool):
    """The ``GRPOConfig`` of ``config`` for ``processes`` processes (stops: ``generation_settings``)."""
    import yaml
    from trl import GRPOConfig

    episodes = config.problems_per_step * config.group_size
    if episodes % processes:
        raise ValueError(f"{episodes} episodes per update do not split over {processes} processes")
    per_process = episodes // processes
    micro = min(config.micro_batch_size or per_process, per_process)
    if per_process % micro:
        raise ValueError(f"micro_batch_size {micro} does not divide {per_process} episodes per process")
    options = config.options
    values: dict[str, Any] = {
        "output_dir": str(Path(config.out) / "trl"),
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": per_process // micro,
        "num_generations": config.group_size,
        "max_completion_length": config.max_new_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": 0,
        "learning_rate": config.lr,
        "lr_scheduler_type": "constant",
        "weight_decay": 0.01,
        "max_grad_norm": config.grad_clip,
        "num_iterations": options.epochs_per_batch,
        "epsilon": options.clip_low,
        "epsilon_high": options.clip_high,
        "beta": options.kl_beta,
        "loss_type": LOSS_TYPES[options.loss_aggregation],
        "scale_rewards": "group" if options.scale_rewards else "none",
        "mask_truncated_completions": False,
        "shuffle_dataset": False,
        "gradient_checkpointing": False,
        "max_steps": config.steps,
        "seed": config.seed,
        "use_cpu": use_cpu,
        "bf16": not use_cpu and config.dtype in ("auto", "bfloat16"),
        "fp16": not use_cpu and config.dtype == "float16",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_vllm": config.vllm != "off",
        "vllm_mode": "colocate" if config.vllm == "off" else config.vllm,
        "vllm_server_base_url": config.vllm_server_url or None,
        "vllm_max_model_length": config.max_context + config.max_new_tokens,  # room for continued turns
    }
    if config.trl_args:
        values.update(yaml.safe_load(Path(config.trl_args).read_text()) or {})
    return GRPOConfig(**values)


def generation_settings(args, model, tokenizer, lock_queries: bool) -> dict[str, Any]:
    """``args.generation_kwargs`` with the closing tags' last tokens as stops: vLLM's ``stop_token_ids``,
    or extra end ids for transformers' ``generate``.

    With ``lock_queries`` (GRPO: self-exploratory, as in the native trainer) the query-open tag is
    a bad word: vLLM's ``bad_words``, transformers' ``bad_words_ids``. Both ban the tag's own
    tokenization, where the native ``QueryLock`` bans every token sequence that spells it."""
    stops = stop_ids(tokenizer, DEFAULT_PROTOCOL)
    settings = dict(args.generation_kwargs or {})
    tag = DEFAULT_PROTOCOL.query_open
    if args.use_vllm:
        settings["stop_token_ids"] = stops
        if lock_queries:
            settings["bad_words"] = [tag]
        return settings
    declared = model.generation_config.eos_token_id
    ends = declared if isinstance(declared, list) else [declared] if declared is not None else []
    settings["eos_token_id"] = sorted({tokenizer.eos_token_id, *ends, *stops})
    if lock_queries:
        settings["bad_words_ids"] = [tokenizer.encode(tag, add_special_tokens=False)]
    return settings
