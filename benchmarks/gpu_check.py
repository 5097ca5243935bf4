"""A prepared check of the CUDA paths, on one GPU, in a few minutes; not part of CI.

    python benchmarks/gpu_check.py [--steps 5] [--hidden 512] [--layers 8] [--out runs/gpu-check]

A small model built from a config (a Qwen2 over the package's tokenizer, ``--hidden`` x
``--layers``) is warm-started by SFT so its rollouts use the protocol, then every check
trains it for ``--steps`` bf16 EAPO updates of 8 problems x 8 episodes:

- ``ours``: our trainer (``eapo-gym train``); ``ours-lora``: the same with a rank-8 LoRA adapter;
- ``trl``: the TRL engine (``--engine trl``, transformers generation); ``trl-lora``;
- ``trl-vllm``: the TRL engine with TRL's vLLM in colocate mode, when vLLM is installed.

Each check runs in its own process (a crash or vLLM's memory pool stays there) and prints
one row: policy tokens per second (median over the updates after the first), peak GPU
memory (``torch.cuda.max_memory_allocated``) and the last update's loss. Without CUDA it
exits at once with status 1 and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHECKS = ("ours", "ours-lora", "trl", "trl-lora", "trl-vllm")
VLLM_ARGS = {"vllm_gpu_memory_utilization": 0.3, "vllm_enable_sleep_mode": False}


# Every run of the check: bf16 on the GPU, easy sums, a token evaluation.
ON_GPU = {
    "train_difficulties": (1, 2),
    "eval_difficulties": (1,),
    "eval_problems": 8,
    "eval_k": 1,
    "eval_every": 10**9,
    "device": "cuda",
    "dtype": "bfloat16",
    "tensorboard": False,
}


def settings(args: argparse.Namespace, start: Path, name: str) -> dict:
    """``TrainConfig`` keys of check ``name``, starting from the warm-started model ``start``."""
    values = {
        **ON_GPU,
        "algo": "eapo",
        "model": str(start),
        "out": str(Path(args.out) / name),
        "steps": args.steps,
        "problems_per_step": 8,
        "group_size": 8,
        "lora_rank": 8 if name.endswith("lora") else 0,
        "engine": "trl" if name.startswith("trl") else "native",
    }
    if name == "trl-vllm":
        trl_args = Path(args.out) / "vllm.yaml"
        trl_args.write_text(json.dumps(VLLM_ARGS))  # JSON is YAML
        values.update(vllm="colocate", trl_args=str(trl_args))
    return values


def warm_start(args: argparse.Namespace) -> Path:
    """A model built from a config, then 40 SFT steps on easy sums, saved under ``--out``."""
    from eapo_agents.training.config import TrainConfig
    from eapo_agents.training.loop import train
    from eapo_agents.training.policy import TinyModelConfig, build_tiny_model, save_policy
    from eapo_gym.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    shape = TinyModelConfig(args.hidden, args.layers, args.hidden // 64, 3 * args.hidden)
    save_policy(build_tiny_model(tokenizer, shape), tokenizer, Path(args.out) / "init")
    config = TrainConfig.from_dict(
        {
            **ON_GPU,
            "algo": "sft",
            "model": str(Path(args.out) / "init"),
            "out": str(Path(args.out) / "sft"),
            "steps": 40,
            "lr": 2e-3,
        }
    )
    train(config, progress=False)
    return Path(config.out) / "checkpoint" / "model"


def run_check(args: argparse.Namespace, start: Path, name: str) -> dict:
    """Train check ``name`` in this process; its tokens/s, peak GPU memory and last loss."""
    import torch

    from eapo_agents.engines import trl_train
    from eapo_agents.training import loop
    from eapo_agents.training.config import TrainConfig

    config = TrainConfig.from_dict(settings(args, start, name))
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    (trl_train.train if config.engine == "trl" else loop.train)(config, progress=False)
    rows = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "loss" in row]
    return {
        "check": name,
        "tokens_per_s": statistics.median(row["tokens_per_s"] for row in updates[1:] or updates),
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30,
        "loss": updates[-1]["loss"],
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="EAPO updates per check")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size of the model built")
    parser.add_argument("--layers", type=int, default=8, help="layers of the model built")
    parser.add_argument("--out", default="runs/gpu-check", help="run directories")
    parser.add_argument("--only", choices=CHECKS, help=argparse.SUPPRESS)  # one check, in this process
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device is visible; this check needs one GPU (it is not part of CI)")
    start = Path(args.out) / "sft" / "checkpoint" / "model"
    if args.only:
        print(json.dumps(run_check(args, start, args.only)))
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    warm_start(args)
    shape = f"model {args.hidden} x {args.layers}, bf16, {args.steps} updates"
    print(f"GPU: {torch.cuda.get_device_name()}; {shape}")
    print(f"{'check':<10} {'tokens/s':>10} {'peak GB':>8} {'loss':>10} {'seconds':>8}")
    for name in CHECKS:
        if name == "trl-vllm" and importlib.util.find_spec("vllm") is None:
            print(f"{name:<10} skipped: vLLM is not installed")
            continue
        command = [sys.executable, __file__, "--only", name, *sys.argv[1:]]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name:<10} FAILED (exit {done.returncode}):\n{done.stderr[-3000:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{name:<10} {row['tokens_per_s']:>10.0f} {row['peak_gpu_gb']:>8.2f} "
            f"{row['loss']:>10.4f} {row['seconds']:>8.0f}"
        )


if __name__ == "__main__":
    main()
