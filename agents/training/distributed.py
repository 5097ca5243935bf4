"""Data parallelism through accelerate, under any launcher that sets ``WORLD_SIZE``.

GPUs: ``accelerate launch --multi_gpu --num_processes 8 -m eapo_agents.cli train ...``;
CPU processes: ``torchrun --standalone --nproc_per_node 2 -m eapo_agents.cli train ...``
(accelerate's own CPU launcher needs MPI).

Every process loads the same policy, plays its own rollouts (problems and
samples drawn from ``(seed, step, rank)``) and computes its local loss; the
gradients of all trainable parameters (the policy, and PPO's value head and
critic) are averaged across processes with accelerate's ``reduce`` before the
optimizer step, so every replica takes the same step and stays identical.
Evaluation, logging and checkpoints happen on the main process only.
"""

from __future__ import annotations

import os

import torch


def make_accelerator(device: str):
    """An ``accelerate.Accelerator`` when launched with several processes; ``None`` when alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import Accelerator

    return Accelerator(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


def average_gradients(parameters: list[torch.nn.Parameter], accelerator) -> None:
    """Replace each gradient by its mean over processes (one flattened all-reduce)."""
    if accelerator is None or accelerator.num_processes <= 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    offset = 0
    for parameter, grad in zip(parameters, grads, strict=True):
        parameter.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
        offset += grad.numel()
