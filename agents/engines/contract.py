"""What each training engine honours: the shared settings, the algorithm options and the metric keys.

Two engines train: ``native`` (our loop, ``training.loop``) and ``trl`` (TRL's ``GRPOTrainer``,
``engines.trl_train``). Each declares the shared ``TrainConfig`` fields and the algorithm options it
honours (``EngineContract``); any other set off its default is refused with one line by
``check_engine_settings``, before a model loads. Where both honour a setting it means the same:

- ``problems_per_step`` is global: the problems of an update in all, split evenly over the
  processes of a launcher (so it must be a multiple of their number), drawn as one process
  draws them (``training.distributed``);
- ``steps`` counts updates (rollout batches); ``epochs_per_batch`` (mu) is the passes over each,
  one optimizer step per pass, rho_s and the turn budget advancing once per update;
- ``device``: ``cuda:N`` places a single process on GPU N natively. Under a launcher, and on
  TRL always, accelerate places each process on its own GPU, so ``cuda:N`` is refused there
  (choose GPUs with ``CUDA_VISIBLE_DEVICES``).

Both engines log the same ``metrics.jsonl`` keys for the same algorithm (the algorithm's
``group_metrics`` included), except the ones declared as an engine's own: ``NATIVE_ONLY_METRICS``
and, on TRL, the keys under ``TRL_METRIC_PREFIX``. Under a launcher both log the main process's
share of the rollouts and ``processes``; with mu > 1 TRL's ``grad_norm`` is its last pass's, ours
the passes' mean.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..training.config import SettingError, TrainConfig, shared_fields
from ..training.policy import pick_device
from ..training.registry import agent_names

# The metric keys one engine logs and the other does not (for the same algorithm and settings).
# TRL: the gap with --vllm only; its evaluations are not timed
NATIVE_ONLY_METRICS = frozenset({"logprob_gap_mean", "logprob_gap_max", "eval_seconds"})
TRL_METRIC_PREFIX = "trl/"  # every TRL log value without a native name (``trl_train.OUR_NAMES``)

TRL_ONLY_FIELDS = frozenset({"vllm", "vllm_server_url", "trl_args"})


@dataclass(frozen=True)
class EngineContract:
    """An engine's declaration: the algorithms it trains (None: every registered one), the shared fields
    and the algorithm options it honours (None: all of them)."""

    name: str
    algorithms: frozenset[str] | None
    fields: frozenset[str]
    options: frozenset[str] | None


NATIVE = EngineContract(
    name="native",
    algorithms=None,
    fields=frozenset(spec.name for spec in shared_fields()) - TRL_ONLY_FIELDS,
    options=None,
)

TRL = EngineContract(
    name="trl",
    algorithms=frozenset(agent_names(engine="trl")),
    fields=frozenset(
        {
            "algo", "preset", "model", "steps", "seed", "out", "overwrite", "device", "dtype", "hub_kernels",
            "lora_rank",
            "engine", "vllm", "vllm_server_url", "trl_args",
            "problems", "train_difficulties", "eval_difficulties",
            "problems_per_step", "group_size", "max_new_tokens", "max_context", "temperature", "top_p",
            "short_prompt", "rollout_backend",
            "lr", "grad_clip", "micro_batch_size",
            "experts", "expert_noise", "max_queries", "parallel_experts", "consult_cost", "expert_timeout",
            "max_turns", "final_turns", "expert_failure_share", "expert_failure_stop",
            "eval_every", "eval_problems", "eval_k", "eval_split", "eval_consult", "tensorboard",
        }
    ),  # not: resume, micro_batch_tokens (TRL batches rows: micro_batch_size), save_every (saves at the end)
    # mapped onto GRPOConfig, or played by our rollout
    options=frozenset(
        {
            "epochs_per_batch", "clip_low", "clip_high", "kl_beta", "loss_aggregation", "overlong",
            "scale_rewards", "acceptance", "acceptance_scale", "turn_schedule", "schedule_steps",
        }
    ),
)  # fmt: skip

ENGINES = {contract.name: contract for contract in (NATIVE, TRL)}


def launched_processes() -> int:
    """The number of processes of the launcher this runs under (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_engine_settings(config: TrainConfig, processes: int | None = None) -> None:
    """``SettingError`` for the first setting ``config.engine`` cannot honour under ``processes``
    processes (default: the launcher's), before any model loads."""
    processes = processes or launched_processes()
    contract = ENGINES[config.engine]
    if contract.algorithms is not None and config.algo not in contract.algorithms:
        trained = " or ".join(sorted(contract.algorithms))
        raise SettingError("algo", f"--engine {contract.name} trains {trained}", config.algo)
    for spec in shared_fields():
        _check_honoured(contract, "fields", spec, getattr(config, spec.name))
    for spec in dataclasses.fields(config.options):
        _check_honoured(contract, "options", spec, getattr(config.options, spec.name))
    if config.problems_per_step % processes:
        raise SettingError(
            "problems_per_step",
            f"expected a multiple of the {processes} processes (the batch is global, split evenly over them)",
            config.problems_per_step,
        )
    if config.device.startswith("cuda:") and (contract is TRL or processes > 1):
        raise SettingError(
            "device",
            "accelerate places each process on its own GPU (under a launcher, and always with --engine trl); "
            "choose GPUs with CUDA_VISIBLE_DEVICES",
            config.device,
        )
    if contract is TRL:
        _check_trl(config, processes)


def _honours(contract: EngineContract, kind: str, name: str) -> bool:
    """Whether ``contract`` honours the shared field (``kind`` "fields") or algorithm option ``name``."""
    honoured = getattr(contract, kind)
    return honoured is None or name in honoured


def _check_honoured(contract: EngineContract, kind: str, spec: dataclasses.Field, value) -> None:
    if value == spec.default or _honours(contract, kind, spec.name):
        return
    reason = f"not available with --engine {contract.name} (only its default, {spec.default!r})"
    other = next((c.name for c in ENGINES.values() if _honours(c, kind, spec.name)), None)
    raise SettingError(spec.name, f"{reason}; --engine {other} honours it" if other else reason, value)


def _check_trl(config: TrainConfig, processes: int) -> None:
    per_process = config.problems_per_step * config.group_size // processes
    micro = config.micro_batch_size or per_process
    if per_process % min(micro, per_process):
        raise SettingError(
            "micro_batch_size", f"expected a divisor of the {per_process} episodes per process", micro
        )
    if config.dtype == "float16" and pick_device(config.device).type != "cuda":
        raise SettingError(
            "dtype",
            "needs CUDA with --engine trl (TRL's fp16 mixed precision); use bfloat16 or float32 on the CPU",
            config.dtype,
        )
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise SettingError("engine", "its generation does not support FSDP; use DeepSpeed ZeRO-3", "trl")
    if config.vllm == "server" and not config.vllm_server_url:
        raise SettingError("vllm_server_url", "--vllm server needs the server's URL")
    if config.trl_args and not Path(config.trl_args).exists():
        raise SettingError("trl_args", "no such file", config.trl_args)
