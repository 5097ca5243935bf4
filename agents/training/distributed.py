"""Data parallelism through accelerate, under any launcher that sets ``WORLD_SIZE``.

GPUs: ``accelerate launch --multi_gpu --num_processes 8 -m eapo_agents.cli train ...``;
CPU processes: ``torchrun --standalone --nproc_per_node 2 -m eapo_agents.cli train ...``
(accelerate's own CPU launcher needs MPI).

Every process loads the same policy, plays its share of the update's rollouts and
computes its local loss; the
gradients of all trainable parameters (the policy, and PPO's value head and
critic) are averaged across processes with accelerate's ``reduce`` before the
optimizer step, so every replica takes the same step and stays identical.
Evaluation, logging and checkpoints happen on the main process only.

The batch is global on both engines: ``--problems-per-step`` problems per update in all, split
evenly over the processes (``process_share``), so the problems and episode seeds of an update are a
single process's, whatever the process count; only the sampling noise is drawn per process.
"""

from __future__ import annotations

import os

import torch

from .run import draw_episodes, episode_rng


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


def processes_and_rank(accelerator) -> tuple[int, int]:
    """The number of processes and this one's index (1 and 0 without a launcher)."""
    return (1, 0) if accelerator is None else (accelerator.num_processes, accelerator.process_index)


def process_share(draws: list, processes: int, rank: int) -> list:
    """Process ``rank``'s contiguous share of a global batch's ``draws``, split evenly over ``processes``."""
    size = len(draws) // processes
    return draws[rank * size : (rank + 1) * size]


def draw_update(
    seed: int,
    step: int,
    problem_count: int,
    problems: int,
    group_size: int,
    processes: int = 1,
    rank: int = 0,
) -> tuple[list[int], list[int], int]:
    """Update ``step``'s draws for its whole batch, as one process draws them (``problems`` indices into
    the training problems, then ``group_size`` episode seeds per problem), and process ``rank``'s seed
    of the sampling noise (a single process's is the first)."""
    rng = episode_rng(seed, step)
    indices, seeds = draw_episodes(rng, problem_count, problems, problems * group_size)
    return indices, seeds, int(rng.integers(2**63, size=processes)[rank])
