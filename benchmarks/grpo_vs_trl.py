"""One GRPO step, ours (``GRPOAgent.train_step``) versus TRL's ``GRPOTrainer``, on CPU.

    python -m benchmarks.grpo_vs_trl [--setups 4x4,8x8] [--completion-tokens 64] [--steps 5] [--warmup 1]
                                     [--wait-idle 120] [--checkpointing-row]

A step is: sample the completions, score them, one forward/backward of the clipped
surrogate over all of them, one optimizer step. Both sides start from the same randomly
initialised tiny model (``build_tiny_model``, seed 0, fp32), use "{question}\\n" prompts of
arithmetic difficulty 3, P prompts x G completions per step (``--setups PxG``), exactly
``--completion-tokens`` sampled tokens per completion, temperature 1, top-p 1, no top-k,
DAPO token-level loss with clip 0.2 / 0.28, no KL term (no reference model), one
gradient pass per batch, advantages scaled by the group std, lr 2e-4 (constant), AdamW
weight decay 0.01, fp32, no gradient checkpointing. TRL 1.x turns gradient checkpointing
on by default; the main rows turn it off (TRL's fast setting at this size, and ours has
none), and ``--checkpointing-row`` adds a labelled row of TRL with it on.

How the lengths are forced: TRL gets ``generation_kwargs={"min_new_tokens": L}`` (EOS is
masked out); ours runs with its backend's stopper replaced by
``benchmarks.rollout_speed.NeverStopper`` (the stop check runs but never ends a row), and
``max_turns=1`` so every episode is one turn. Remaining differences are listed in
``DIFFERENCES`` and in the output.

Timing starts once the CPUs are quiet (``--wait-idle``: the most seconds to wait). Steps
are interleaved in one process: a ``TrainerCallback`` times each TRL step from
``on_step_begin`` to ``on_step_end`` and then times one ``train_step`` of ours. Medians
exclude the ``--warmup`` first steps. Each step is also split into its rollout (ours:
``collect_groups``, which times itself; TRL: from the step's start to its first ``compute_loss``)
and the rest, the update (forward, backward, optimizer step), to show where the time goes. Peak
memory comes from a fresh subprocess per contender and setup running two steps (Linux ``VmHWM``,
reset after construction).

Writes ``benchmarks/results/grpo_vs_trl.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import trl
from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from benchmarks.rollout_speed import (
    THREADS,
    NeverStopper,
    OtherLoad,
    machine_info,
    measure_in_subprocesses,
    proc_status_mb,
    reset_peak_rss,
    wait_for_idle,
    write_results,
)
from eapo_agents.algorithms.grpo import GRPOAgent
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.policy import build_tiny_model
from eapo_gym.problems import load_problems
from eapo_gym.tokenizer import load_tokenizer
from eapo_gym.verify import is_correct

RESULTS = Path(__file__).parent / "results"
CONTENDERS = ("ours", "trl")
CHECKPOINTING = "trl_checkpointing"  # TRL with its default gradient checkpointing, on request
LEARNING_RATE = 2e-4
CLIP_LOW, CLIP_HIGH = 0.2, 0.28
DATASET_PROMPTS = 64
MEMORY_STEPS = 2
DIFFERENCES = [
    "Exact length: TRL masks EOS with min_new_tokens; ours patches TurnStopper to a never-stopping "
    "subclass (its per-token stop check still runs).",
    "Reward: TRL calls a reward function (is_correct on the completion against the dataset answer); "
    "ours steps ExpertMathEnv (protocol parse, is_correct on an <answer> span, max_turns=1).",
    "Prompts: TRL cycles a fixed in-memory dataset of 64 problems; ours draws problems of the same "
    "generator (arithmetic, difficulty 3) per step from the env's train split.",
    "The random-init model is never correct, so every reward and every advantage is 0 on both sides; "
    "the forward/backward and optimizer step still run in full.",
    "Generation: TRL calls transformers' generate (dynamic KV cache, left padding); ours its static-KV "
    "decoder (fused projections, finished rows dropped).",
    "Update: TRL runs the whole batch in one forward/backward over the completion logits only "
    "(logits_to_keep) and also computes per-token entropy; ours length-bucketed micro-batches of at "
    "most 2048 padded tokens over every position.",
    "Advantages: TRL divides by std + 1e-4, ours by std + 1e-6 (both the unbiased group std); with "
    "all-zero rewards both are 0.",
    "Optimizer: TRL's Trainer AdamW (optim in the JSON) with weight decay 0.01, as ours "
    "(torch.optim.AdamW, weight decay 0.01); TRL also logs metrics every step.",
    "Gradient checkpointing: off on both in the main rows (TRL 1.x defaults to on); the "
    "trl_checkpointing row, when present, is TRL with it on.",
]


@dataclass(frozen=True)
class Setup:
    """P prompts x G completions per step, L tokens each; ``warmup`` + ``steps`` steps."""

    prompts: int
    group: int
    completion_tokens: int
    steps: int
    warmup: int

    @property
    def name(self) -> str:
        return f"{self.prompts}x{self.group}"

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps


def our_agent(setup: Setup) -> GRPOAgent:
    """``GRPOAgent`` on a fresh tiny model with ``setup``'s batch, single-turn episodes."""
    tokenizer = load_tokenizer()
    config = TrainConfig.from_dict(
        {
            "problems": "arithmetic",
            "train_difficulties": (3,),
            "problems_per_step": setup.prompts,
            "group_size": setup.group,
            "max_new_tokens": setup.completion_tokens,
            "max_turns": 1,
            "kl_beta": 0.0,
            "lr": LEARNING_RATE,
            "clip_low": CLIP_LOW,
            "clip_high": CLIP_HIGH,
            "device": "cpu",
            "tensorboard": False,
        }
    )
    agent = GRPOAgent(build_tiny_model(tokenizer, seed=0), tokenizer, config)
    agent.backend.stopper = NeverStopper(tokenizer, agent.envs.protocol)  # exact length, like TRL's
    return agent


def correct(completions: list[str], answer: list[str], **_: Any) -> list[float]:
    """TRL reward function: 1 for a verified correct completion, else 0."""
    return [float(is_correct(text, gold)) for text, gold in zip(completions, answer, strict=True)]


def trl_trainer(
    setup: Setup, out_dir: str, callbacks: list[TrainerCallback], checkpointing: bool = False
) -> GRPOTrainer:
    """``GRPOTrainer`` on a fresh tiny model, matching ``our_agent``'s settings (``checkpointing``:
    TRL's default gradient checkpointing on)."""
    tokenizer = load_tokenizer()
    problems = load_problems("arithmetic", difficulty=[3])
    dataset = Dataset.from_list(
        [
            {"prompt": problems[i].question + "\n", "answer": problems[i].answer}
            for i in range(DATASET_PROMPTS)
        ]
    )
    args = GRPOConfig(
        output_dir=out_dir,
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=setup.prompts * setup.group,
        num_generations=setup.group,
        max_completion_length=setup.completion_tokens,
        generation_kwargs={"min_new_tokens": setup.completion_tokens},
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        num_iterations=1,
        loss_type="dapo",
        scale_rewards="group",
        epsilon=CLIP_LOW,
        epsilon_high=CLIP_HIGH,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        weight_decay=0.01,
        gradient_checkpointing=checkpointing,
        max_grad_norm=1.0,
        max_steps=setup.total_steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=build_tiny_model(tokenizer, seed=0),
        reward_funcs=correct,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # logs stay in trainer.state.log_history, off stdout
    return trainer


def record_rollouts(trainer, timer, seconds: list[float]) -> None:
    """Append each step's rollout time to ``seconds``: from the step's start (``timer.start``) to its
    first loss computation (TRL generates and scores the step's completions before it), timed
    through the trainer's public ``compute_loss``."""
    compute_loss = trainer.compute_loss
    timed: set[float] = set()

    def first_loss_of_the_step(*args: Any, **kwargs: Any) -> Any:
        if timer.start not in timed:
            timed.add(timer.start)
            seconds.append(time.perf_counter() - timer.start)
        return compute_loss(*args, **kwargs)

    trainer.compute_loss = first_loss_of_the_step


class Interleaved(TrainerCallback):
    """Times each TRL step, then runs and times one step of ours: TRL, ours, TRL, ours, ..."""

    def __init__(self, agent: GRPOAgent) -> None:
        self.agent = agent
        self.seconds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        self.rollout_seconds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        self.our_metrics: list[dict[str, float]] = []

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.seconds["trl"].append(time.perf_counter() - self.start)
        start = time.perf_counter()
        self.our_metrics.append(self.agent.train_step(state.global_step))
        self.seconds["ours"].append(time.perf_counter() - start)
        self.rollout_seconds["ours"].append(
            self.our_metrics[-1]["rollout_seconds"]
        )  # timed by collect_groups


def time_setup(setup: Setup) -> dict[str, Any]:
    """Median step seconds of both contenders, interleaved in this process."""
    torch.set_num_threads(THREADS)
    callback = Interleaved(our_agent(setup))
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = trl_trainer(setup, out_dir, [callback])
        record_rollouts(trainer, callback, callback.rollout_seconds["trl"])
        with OtherLoad() as load:
            trainer.train()
    measured = slice(setup.warmup, None)
    ours = callback.our_metrics[measured]
    split = {
        name: phases(callback.seconds[name][measured], callback.rollout_seconds[name][measured])
        for name in CONTENDERS
    }
    return {
        "other_cpu_share": load.share,
        "ours": {
            **split["ours"],
            "step_s_runs": callback.seconds["ours"],
            "completion_tokens_per_step": statistics.median([m["policy_tokens"] for m in ours]),
            "turns_per_episode": statistics.mean(m["turns"] for m in callback.our_metrics),
            "single_turn": all(m["turns"] == 1.0 for m in callback.our_metrics),
        },
        "trl": {
            **split["trl"],
            "step_s_runs": callback.seconds["trl"],
            "completion_tokens_per_step": trl_tokens_per_step(trainer, setup),
            "optim": str(trainer.args.optim),
        },
    }


class StepTimer(TrainerCallback):
    """Times each step of a TRL run on its own."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def time_trl_checkpointing(setup: Setup) -> dict[str, Any]:
    """TRL alone, with its default gradient checkpointing on: median step, rollout and update seconds."""
    torch.set_num_threads(THREADS)
    timer, rollouts = StepTimer(), []
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = trl_trainer(setup, out_dir, [timer], checkpointing=True)
        record_rollouts(trainer, timer, rollouts)
        trainer.train()
    measured = slice(setup.warmup, None)
    return {
        **phases(timer.seconds[measured], rollouts[measured]),
        "step_s_runs": timer.seconds,
        "completion_tokens_per_step": trl_tokens_per_step(trainer, setup),
        "optim": str(trainer.args.optim),
    }


def trl_tokens_per_step(trainer: GRPOTrainer, setup: Setup) -> float:
    """Median completion tokens per measured step, from TRL's logs."""
    logs = [entry for entry in trainer.state.log_history if "completions/mean_length" in entry]
    return statistics.median(
        [e["completions/mean_length"] * setup.prompts * setup.group for e in logs[setup.warmup :]]
    )


def phases(steps: list[float], rollouts: list[float]) -> dict[str, float]:
    """Median step, rollout and update (step minus rollout) seconds."""
    return {
        "step_s": statistics.median(steps),
        "rollout_s": statistics.median(rollouts),
        "update_s": statistics.median(s - r for s, r in zip(steps, rollouts, strict=True)),
    }


def peak_memory(name: str, setup: Setup) -> dict[str, float]:
    """``MEMORY_STEPS`` steps of ``name`` in this (fresh) process: peak RSS and its rise during training."""
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as out_dir:
        if name == "ours":
            agent = our_agent(setup)
            before = reset_peak_rss()
            for step in range(1, MEMORY_STEPS + 1):
                agent.train_step(step)
        else:
            trainer = trl_trainer(setup, out_dir, [], checkpointing=name == CHECKPOINTING)
            before = reset_peak_rss()
            trainer.train()
    peak = proc_status_mb("VmHWM")
    return {"peak_rss_mb": peak, "train_rss_mb": peak - before}


def markdown(result: dict[str, Any]) -> str:
    """The result as a markdown table, the ratios and the setup differences."""
    lines = [
        f"{result['args']['completion_tokens']} tokens per completion, median of {result['args']['steps']} "
        f"steps after {result['args']['warmup']} warm-up, interleaved, {THREADS} threads, CPU.",
        "",
        "| setup | contender | step (s) | rollout (s) | update (s) | completion tokens/step "
        "| peak RSS (MB) | training RSS rise (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, setup in result["setups"].items():
        for contender in (label for label in (*CONTENDERS, CHECKPOINTING) if label in setup):
            row = setup[contender]
            seconds = " | ".join(f"{row[key]:.2f}" for key in ("step_s", "rollout_s", "update_s"))
            lines.append(
                f"| {name} | {contender} | {seconds} | {row['completion_tokens_per_step']:.0f} "
                f"| {row['peak_rss_mb']:.0f} | {row['train_rss_mb']:.1f} |"
            )
    lines.append("")
    for name, setup in result["setups"].items():
        lines.append(
            f"- {name}: ours / TRL step time **{setup['ratio_ours_over_trl']:.2f}x** (target <= 0.5x); "
            f"rollout {setup['ours']['rollout_s'] / setup['trl']['rollout_s']:.2f}x, update "
            f"{setup['ours']['update_s'] / setup['trl']['update_s']:.2f}x; with a free rollout ours would "
            f"still take {setup['ours']['update_s'] / setup['trl']['step_s']:.2f}x of TRL's step; "
            f"ours {setup['ours']['turns_per_episode']:.2f} turns per episode "
            f"({'all' if setup['ours']['single_turn'] else 'not all'} single-turn); other processes used "
            f"{setup['other_cpu_share']:.0%} of the CPUs meanwhile."
        )
        if CHECKPOINTING in setup:
            lines.append(
                f"- {name}: TRL with gradient checkpointing (its default) "
                f"{setup[CHECKPOINTING]['step_s'] / setup['trl']['step_s']:.2f}x its step time without; "
                f"ours / that row {setup['ours']['step_s'] / setup[CHECKPOINTING]['step_s']:.2f}x."
            )
    lines += ["", "Differences:", *(f"- {text}" for text in DIFFERENCES), ""]
    lines.append(f"Waited {result['idle_wait']['waited_s']:.0f} s for an idle window before timing.")
    lines.append(
        f"Load before/after: `{result['machine']['uptime']}` / `{result['machine_after']['uptime']}`"
    )
    return "\n".join(lines)


def run_benchmark(
    setups: list[tuple[int, int]],
    completion_tokens: int,
    steps: int,
    warmup: int,
    wait_idle: float = 0.0,
    out_dir: Path = RESULTS,
    checkpointing_row: bool = False,
) -> dict[str, Any]:
    """Time and measure every setup; write ``grpo_vs_trl.json`` and ``.md`` under ``out_dir``.
    ``checkpointing_row`` adds TRL with gradient checkpointing on, timed on its own."""
    names = ",".join(f"{p}x{g}" for p, g in setups)
    command = ["python", "-m", "benchmarks.grpo_vs_trl", "--setups", names]
    command += ["--completion-tokens", str(completion_tokens), "--steps", str(steps), "--warmup", str(warmup)]
    command += ["--wait-idle", str(wait_idle), *(["--checkpointing-row"] if checkpointing_row else [])]
    contenders = (*CONTENDERS, CHECKPOINTING) if checkpointing_row else CONTENDERS
    idle_wait = wait_for_idle(wait_idle)
    machine = {**machine_info(), "trl": trl.__version__}
    rows = {}
    for prompts, group in setups:
        setup = Setup(prompts, group, completion_tokens, steps, warmup)
        row = time_setup(setup)
        if checkpointing_row:
            row[CHECKPOINTING] = time_trl_checkpointing(setup)
        args = [
            "--prompts",
            str(prompts),
            "--group",
            str(group),
            "--completion-tokens",
            str(completion_tokens),
        ]
        runs = {name: ["--memory-of", name, *args] for name in contenders}
        for name, memory in measure_in_subprocesses("benchmarks.grpo_vs_trl", runs).items():
            row[name].update(memory)
        row["ratio_ours_over_trl"] = row["ours"]["step_s"] / row["trl"]["step_s"]
        row["setup"] = asdict(setup)
        rows[setup.name] = row
    result = {
        "command": shlex.join(command),
        "args": {"completion_tokens": completion_tokens, "steps": steps, "warmup": warmup},
        "idle_wait": idle_wait,
        "machine": machine,
        "machine_after": machine_info(),
        "setups": rows,
        "target_ratio": 0.5,
        "differences": DIFFERENCES,
    }
    write_results(out_dir, "grpo_vs_trl", "GRPO step: ours vs TRL", result, markdown(result))
    return result


def parse_setups(text: str) -> list[tuple[int, int]]:
    """``"4x4,8x8"`` -> ``[(4, 4), (8, 8)]``."""
    return [(int(p), int(g)) for p, g in (part.split("x") for part in text.split(",") if part)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default="4x4,8x8", help="comma-separated PROMPTSxGROUP")
    parser.add_argument("--completion-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="measured steps per setup")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured first steps")
    parser.add_argument(
        "--wait-idle", type=float, default=120, help="seconds to wait at most for quiet CPUs before timing"
    )
    parser.add_argument(
        "--checkpointing-row",
        action="store_true",
        help="add TRL with gradient checkpointing on (its default)",
    )
    parser.add_argument("--memory-of", choices=(*CONTENDERS, CHECKPOINTING), help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--group", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        setup = Setup(args.prompts, args.group, args.completion_tokens, MEMORY_STEPS, 0)
        print(json.dumps(peak_memory(args.memory_of, setup)))
        return
    result = run_benchmark(
        parse_setups(args.setups),
        args.completion_tokens,
        args.steps,
        args.warmup,
        args.wait_idle,
        checkpointing_row=args.checkpointing_row,
    )
    print(markdown(result))


if __name__ == "__main__":
    main()
