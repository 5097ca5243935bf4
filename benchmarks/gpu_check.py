"""The GPU benchmark: our trainer, with LoRA, and the TRL engine, side by side with ``generate``.

    python benchmarks/gpu_check.py [--quick] [--device cuda] [--out runs/gpu-check]
                                   [--results benchmarks/results] [--peak-tflops T]

Models are built from a config (random init, no download), held in ``--dtype`` (bf16):

- ``512x8``: hidden 512, 8 layers, 8 heads, intermediate 1,536;
- ``qwen2.5-0.5b``: the Qwen2.5-0.5B shape (hidden 896, 24 layers, 14 heads, 2 KV heads,
  intermediate 4,864) over the package's tokenizer.

Every path trains EAPO for ``--updates`` updates of ``--problems`` x ``--group`` episodes
(32 x 16: a GPU-sized batch) and reports, as medians over the updates after the first:

- rollout tokens/s: policy tokens sampled / rollout seconds;
- update tokens/s: tokens of the batch's sequences (prompts, turns, feedback) / the rest of the step;
- step tokens/s: policy tokens / whole step (``tokens_per_s`` of ``metrics.jsonl``);
- peak memory: ``torch.cuda.max_memory_allocated`` over the path (GPU only);
- update MFU: the training pass's model FLOPs (PaLM's 6N per token plus 12 * layers * hidden *
  sequence for attention; 4N with LoRA, whose frozen weights get no gradient) per update second,
  over ``--peak-tflops`` (default: this device's bf16 matmul rate, measured at the start).

Paths: ``ours`` (the native trainer), ``ours-lora`` (rank-8 adapter), ``trl`` (``--engine trl``,
transformers generation). The ``decode`` row times raw sampling at the same batch, exactly
``--new-tokens`` tokens per row: our ``sample_turns`` against ``model.generate`` with its static
cache (``cache_implementation="static"``), which transformers compiles with ``torch.compile`` on
GPUs, as it recommends there (on the CPU it is not compiled; the results say which). Random-init
models rarely end a turn early, so rollouts run to their token limits: the numbers measure
throughput, not learning.

Each path runs in its own process (a crash, a compiled graph or a memory pool stays there) with a
time limit (``--path-timeout``). ``--quick`` (under 5 minutes on an H100-class GPU) runs 3
updates and gives TRL the small model only. Writes ``--results``/gpu_check.json and .md, with the
device's name. With ``--device cuda`` and no CUDA device it exits at once with status 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the benchmarks package is importable
    sys.path.insert(0, str(ROOT))

SHAPE_FIELDS = ("hidden", "layers", "heads", "kv_heads", "intermediate")
SHAPES = {
    "512x8": (512, 8, 8, 8, 1536),
    "qwen2.5-0.5b": (896, 24, 14, 2, 4864),
    "tiny": (64, 2, 4, 2, 128),  # the CPU smoke run's
}
PATHS = ("ours", "ours-lora", "trl")
LORA_RANK = 8


def run_settings(args: argparse.Namespace, model_dir: Path, path: str) -> dict[str, Any]:
    """``TrainConfig`` keys of one path's run (TRL's without the settings it does not honour)."""
    native = {"micro_batch_tokens": args.micro_batch_tokens, "save_every": 10**9}
    return {
        "algo": "eapo",
        "model": str(model_dir),
        "out": str(Path(args.out) / "runs" / f"{model_dir.name}-{path}"),
        "overwrite": True,  # a measurement: a rerun replaces the last one
        "device": args.device,
        "dtype": args.dtype,
        "steps": args.updates,
        "problems_per_step": args.problems,
        "group_size": args.group,
        "max_new_tokens": args.new_tokens,
        "max_turns": 3,
        "max_context": 3 * args.new_tokens + 160,
        "train_difficulties": (1, 2),
        "eval_difficulties": (1,),
        "eval_problems": 4,
        "eval_k": 1,
        "eval_every": 10**9,
        "tensorboard": False,
        "lora_rank": LORA_RANK if path.endswith("lora") else 0,
        "engine": "trl" if path.startswith("trl") else "native",
        **({} if path.startswith("trl") else native),
    }


def build_models(args: argparse.Namespace) -> dict[str, Path]:
    """Each of ``args.models`` built from its shape (seed 0) and saved in ``args.dtype`` under ``--out``."""
    import torch

    from eapo_agents.training.policy import TinyModelConfig, build_tiny_model, save_policy
    from eapo_gym.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    directories = {}
    for name in args.models:
        hidden, layers, heads, kv_heads, intermediate = SHAPES[name]
        shape = TinyModelConfig(hidden, layers, heads, intermediate, num_kv_heads=kv_heads)
        model = build_tiny_model(tokenizer, shape).to(getattr(torch, args.dtype))
        directories[name] = Path(args.out) / "models" / name
        save_policy(model, tokenizer, directories[name])
    return directories


def training_flops_per_token(config, sequence: float, lora: bool) -> float:
    """Model FLOPs of one token's forward and backward: 6N (4N with LoRA) plus attention."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    kv_width = config.num_key_value_heads * (hidden // config.num_attention_heads)
    per_layer = 2 * hidden * hidden + 2 * hidden * kv_width + 3 * hidden * config.intermediate_size
    parameters = config.vocab_size * hidden + layers * per_layer  # the output layer, attention, MLP
    return (4 if lora else 6) * parameters + 12 * layers * hidden * sequence


def run_path(args: argparse.Namespace, model_dir: Path, path: str) -> dict[str, Any]:
    """Train one path in this process; its rates, peak memory and the update's achieved TFLOP/s."""
    import torch
    from transformers import AutoConfig

    from eapo_agents.engines import trl_train
    from eapo_agents.training import loop
    from eapo_agents.training.config import TrainConfig

    config = TrainConfig.from_dict(run_settings(args, model_dir, path))
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    (trl_train.train if config.engine == "trl" else loop.train)(config, progress=False)
    seconds = time.perf_counter() - started
    rows = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    updates = [row for row in rows if "step_seconds" in row]
    measured = updates[1:] or updates
    update_seconds = statistics.median(row["step_seconds"] - row["rollout_seconds"] for row in measured)
    tokens_per_update = statistics.mean(row["sequence_tokens"] for row in updates)
    sequence = tokens_per_update / (args.problems * args.group)
    flops = training_flops_per_token(AutoConfig.from_pretrained(model_dir), sequence, bool(config.lora_rank))
    return {
        "rollout_tokens_per_s": statistics.median(
            row["policy_tokens"] / row["rollout_seconds"] for row in measured
        ),
        "update_tokens_per_s": tokens_per_update / update_seconds,
        "step_tokens_per_s": statistics.median(row["tokens_per_s"] for row in measured),
        "update_tflops": flops * tokens_per_update / update_seconds / 1e12,
        "policy_tokens_per_update": statistics.median(row["policy_tokens"] for row in measured),
        "sequence_tokens_per_update": tokens_per_update,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "loss": updates[-1]["loss"],
        "seconds": seconds,
    }


def decode_speed(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """Tokens/s of ``sample_turns`` and of ``generate`` (static cache) over the same prompts, exactly
    ``--new-tokens`` per row, batch ``problems * group``; each after one warm-up run."""
    import torch

    from benchmarks.rollout_speed import NeverStopper
    from eapo_agents.rollout.backend import SamplingConfig
    from eapo_agents.rollout.sampling import sample_turns
    from eapo_agents.training.policy import autocast, load_policy
    from eapo_gym.protocol import TurnProtocol

    model, tokenizer = load_policy(model_dir, args.device, args.dtype)
    device, batch = model.device, args.problems * args.group
    prompts = torch.randint(3, len(tokenizer), (batch, 40), generator=torch.Generator().manual_seed(0))
    compiled = model.device.type != "cpu"  # transformers compiles a static cache's forward off the CPU

    def ours() -> None:
        generator = torch.Generator(device=device).manual_seed(0)
        stopper = NeverStopper(tokenizer, TurnProtocol())
        sampling = SamplingConfig(args.new_tokens)
        sample_turns(model, prompts.tolist(), stopper, sampling, tokenizer.pad_token_id, generator)

    def generate() -> None:
        ids = prompts.to(device)
        model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0, max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens, cache_implementation="static", disable_compile=not compiled,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip

    rates = {}
    with torch.no_grad(), autocast(device, args.dtype):
        for name, run in (("ours", ours), ("generate_static", generate)):
            run()  # warm-up (and, for generate on a GPU, compilation)
            synchronize(device)
            started = time.perf_counter()
            run()
            synchronize(device)
            rates[name] = batch * args.new_tokens / (time.perf_counter() - started)
    return {
        "ours_tokens_per_s": rates["ours"],
        "generate_static_tokens_per_s": rates["generate_static"],
        "generate_compiled": compiled,
        "ratio_ours_over_generate": rates["ours"] / rates["generate_static"],
    }


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: str, dtype: str) -> float:
    """The device's measured matmul rate in ``dtype`` (square products, 8192 on a GPU, 512 on the CPU)."""
    import torch

    size = 512 if device == "cpu" else 8192
    a = torch.randn(size, size, device=device, dtype=getattr(torch, dtype))
    a @ a
    synchronize(a.device)
    repeats = 3 if device == "cpu" else 50
    started = time.perf_counter()
    for _ in range(repeats):
        a @ a
    synchronize(a.device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--only MODEL:PATH`` measures, in this process."""
    name, _, path = args.only.partition(":")
    model_dir = Path(args.out) / "models" / name
    return decode_speed(args, model_dir) if path == "decode" else run_path(args, model_dir, path)


def in_subprocess(args: argparse.Namespace, job: str) -> dict[str, Any]:
    """Run ``--only job`` in a fresh process; its result, or why there is none."""
    command = [sys.executable, __file__, *args.argv, "--only", job]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.path_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {args.path_timeout} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        return {"error": f"exit {done.returncode}: {last}", "log": done.stderr[-3000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Build the models, run every (model, path) and the decode rows, write the results."""
    import torch
    import transformers

    Path(args.out).mkdir(parents=True, exist_ok=True)
    directories = build_models(args)
    peak = args.peak_tflops or matmul_tflops(args.device, args.dtype)
    models = {}
    for name in directories:
        paths = {}
        for path in PATHS:
            if path == "trl" and args.quick and name != args.models[0]:
                paths[path] = {"error": "not run with --quick (the TRL engine on the first model only)"}
                continue
            paths[path] = row = in_subprocess(args, f"{name}:{path}")
            if "update_tflops" in row:
                row["update_mfu"] = row["update_tflops"] / peak
        models[name] = {
            "shape": dict(zip(SHAPE_FIELDS, SHAPES[name], strict=True)),
            "paths": paths,
            "decode": in_subprocess(args, f"{name}:decode"),
        }
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    result = {
        "command": shlex.join(["python", "benchmarks/gpu_check.py", *args.argv]),
        "device": device_name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": args.dtype,
        "batch": {"problems": args.problems, "group": args.group, "new_tokens": args.new_tokens},
        "updates": args.updates,
        "peak_tflops": peak,
        "peak_source": "given" if args.peak_tflops else "measured matmul",
        "models": models,
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "gpu_check.json").write_text(json.dumps(result, indent=2))
    (results / "gpu_check.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The results as a table: one row per (model, path), then the decode rows."""
    lines = [
        f"# GPU check on {result['device']}",
        "",
        f"`{result['command']}`",
        "",
        f"{result['dtype']}, EAPO, {result['batch']['problems']} problems x {result['batch']['group']} "
        f"episodes per update, {result['updates']} updates (medians after the first); MFU over "
        f"{result['peak_tflops']:.3g} TFLOP/s ({result['peak_source']}); torch {result['torch']}, "
        f"transformers {result['transformers']}.",
        "",
        "| model | path | rollout tok/s | update tok/s | step policy tok/s | peak GB | update MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, model in result["models"].items():
        for path, row in model["paths"].items():
            if "error" in row:
                lines.append(f"| {name} | {path} | {row['error']} | | | | |")
                continue
            memory = "" if row["peak_memory_gb"] is None else f"{row['peak_memory_gb']:.2f}"
            rates = (row["rollout_tokens_per_s"], row["update_tokens_per_s"], row["step_tokens_per_s"])
            lines.append(
                f"| {name} | {path} | {' | '.join(f'{rate:,.0f}' for rate in rates)} | {memory} | "
                f"{100 * row['update_mfu']:.1f}% |"
            )
    lines += [
        "",
        "| model | ours decode tok/s | generate (static cache) tok/s | compiled | ours / generate |",
        "|---|---|---|---|---|",
    ]
    for name, model in result["models"].items():
        row = model["decode"]
        if "error" in row:
            lines.append(f"| {name} | {row['error']} | | | |")
            continue
        lines.append(
            f"| {name} | {row['ours_tokens_per_s']:,.0f} | {row['generate_static_tokens_per_s']:,.0f} | "
            f"{'yes' if row['generate_compiled'] else 'no'} | {row['ratio_ours_over_generate']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 updates; TRL on the first model only")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke run)")
    parser.add_argument("--dtype", default="bfloat16", help="the models' dtype (default bfloat16)")
    parser.add_argument("--models", default="512x8,qwen2.5-0.5b", help=f"of {', '.join(SHAPES)}")
    parser.add_argument("--problems", type=int, default=32, help="problems per update")
    parser.add_argument("--group", type=int, default=16, help="episodes per problem")
    parser.add_argument("--updates", type=int, default=6, help="updates per path (--quick: 3)")
    parser.add_argument("--new-tokens", type=int, default=48, help="most tokens per policy turn")
    parser.add_argument("--micro-batch-tokens", type=int, default=32768, help="padded tokens per micro-batch")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="MFU's peak (default: measured)")
    parser.add_argument("--path-timeout", type=int, default=600, help="seconds a path may take")
    parser.add_argument("--out", default="runs/gpu-check", help="models and run directories")
    parser.add_argument("--results", default="benchmarks/results", help="where gpu_check.json and .md go")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # MODEL:PATH, measured in this process
    args = parser.parse_args(argv)
    args.argv = list(argv)  # what the per-path processes get, with their --only
    args.models = args.models.split(",")
    if args.quick:
        args.updates = min(args.updates, 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device is visible; this check needs one GPU (it is not part of CI)")
    if args.only:
        print(json.dumps(run_child(args)))
        return
    result = run_benchmark(args)
    print(markdown(result))


if __name__ == "__main__":
    main()
