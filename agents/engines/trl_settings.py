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
| ``epochs_per_batch`` (mu) | ``num_iterations``; ``max_steps`` = ``steps`` x mu, a log row every mu |
| ``clip_low``, ``clip_high`` | ``epsilon``, ``epsilon_high`` |
| ``kl_beta`` | ``beta`` |
| ``loss_aggregation`` token / sequence / constant | ``loss_type`` dapo / grpo / dr_grpo |
| ``scale_rewards`` | ``scale_rewards`` group / none |
| ``vllm``, ``vllm_server_url`` | ``use_vllm``, ``vllm_mode``, ``vllm_server_base_url`` |
| (none) | ``vllm_importance_sampling_correction``: TRL's default (on) under ``--vllm`` |

TRL's optimizer steps are ours times mu: each update (rollout batch) is mu passes, one optimizer
step each, as in our loop. Gradient checkpointing is off (TRL 1.x turns it on by default), and
the dataset is not shuffled: its rows are the problems our loop draws for each update
(``training.run``), in order. ``trl_args`` (a YAML file) sets any other ``GRPOConfig`` field and
wins over the above. Which settings this engine honours, and what it refuses, is declared in
``contract.TRL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eapo_gym.protocol import DEFAULT_PROTOCOL

from ..rollout.continuation import stop_ids
from ..training.config import TrainConfig

LOSS_TYPES = {"token": "dapo", "sequence": "grpo", "constant": "dr_grpo"}


def grpo_args(config: TrainConfig, processes: int, use_cpu: bool):
    """The ``GRPOConfig`` of ``config`` for ``processes`` processes (vLLM's stops: ``vllm_settings``)."""
    import yaml
    from trl import GRPOConfig

    per_process = config.problems_per_step * config.group_size // processes  # checked by the contract
    micro = min(config.micro_batch_size or per_process, per_process)
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
        "max_steps": config.steps * options.epochs_per_batch,
        "seed": config.seed,
        "use_cpu": use_cpu,
        "bf16": not use_cpu and config.dtype in ("auto", "bfloat16"),
        "fp16": not use_cpu and config.dtype == "float16",
        "logging_steps": options.epochs_per_batch,
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


def vllm_settings(args, tokenizer, lock_queries: bool) -> dict[str, Any]:
    """``args.generation_kwargs`` for vLLM's ``SamplingParams``: the closing tags' last tokens as
    ``stop_token_ids`` (``trl_generation.VLLMBackend`` continues a turn stopped early), and with
    ``lock_queries`` (GRPO: self-exploratory, as in the native trainer) the query-open tag as one of
    ``bad_words``, which bans the tag's own tokenization (the native ``QueryLock`` bans every token
    sequence that spells it)."""
    settings = dict(args.generation_kwargs or {})
    settings["stop_token_ids"] = stop_ids(tokenizer, DEFAULT_PROTOCOL)
    if lock_queries:
        settings["bad_words"] = [DEFAULT_PROTOCOL.query_open]
    return settings
