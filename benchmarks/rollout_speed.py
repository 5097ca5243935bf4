"""Rollout throughput: our batched KV-cache sampler (``sample_turns``) versus ``model.generate``.

    python -m benchmarks.rollout_speed [--batch 64] [--new-tokens 60] [--repeats 5] [--policy DIR]
                                       [--wait-idle 120]

Both contenders continue the same left-padded batch of ~40-token prompts on the same
randomly initialised tiny model (``build_tiny_model``, seed 0, fp32, CPU) for exactly
``--new-tokens`` sampled tokens (temperature 1, top-p 1, no top-k):

- ours: ``sample_turns`` with ``NeverStopper``, a ``TurnStopper`` that runs its per-token
  stop check as usual but ignores the verdict, so no row ends early;
- ``model.generate``: ``do_sample=True``, ``min_new_tokens=max_new_tokens`` (EOS is
  suppressed), default dynamic KV cache.

This exact-length pair carries the target. A second pair lets rows end at their first EOS
on both sides (ours: ``EosStopper``; generate: ``eos_token_id``), the case of RL turns that
end at different lengths: ours drops finished rows from the batch, ``generate`` keeps
computing them until the last row ends. Tokens are counted up to each row's EOS.

Timing starts once the CPUs are quiet (``--wait-idle``: the most seconds to wait) and runs
alternate (ours, generate, ours, ...) after one warm-up each; the table shows medians and
the share of CPU time other processes took meanwhile. Peak memory is read in a fresh
subprocess per contender (Linux ``VmHWM``, reset just before the rollout). A last row
times a multi-turn rollout (``play_episodes`` on ``ExpertMathVectorEnv`` with the reference
expert), env steps included; ``--policy`` gives it a trained policy directory, since a
random-init model rarely writes protocol tags, so nearly every episode ends after one turn.

Writes ``benchmarks/results/rollout_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.sampling import LocalBackend, SamplingConfig, TurnStopper, sample_turns
from eapo_agents.training.policy import build_tiny_model, load_policy
from eapo_gym.problems import load_problems
from eapo_gym.protocol import DEFAULT_PROTOCOL
from eapo_gym.tokenizer import load_tokenizer
from eapo_gym.vector import ExpertMathVectorEnv

RESULTS = Path(__file__).parent / "results"
THREADS = 2
PROMPT_TOKENS = 40
CONTENDERS = ("ours", "generate")
AT_EOS = {name: f"{name}_eos" for name in CONTENDERS}  # the same contenders, rows ending at EOS


class NeverStopper(TurnStopper):
    """A ``TurnStopper`` whose stop check runs at full cost but never ends a row."""

    def update(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().update(tokens) & False


class EosStopper(TurnStopper):
    """Ends a row at EOS only, as ``model.generate`` does."""

    def update(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens == self.eos


def machine_info() -> dict[str, Any]:
    """Library versions, threads and the current load average (``uptime``)."""
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "load_average": os.getloadavg(),
    }


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    hertz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hertz, sum(ticks) / hertz


class OtherLoad:
    """Context manager: the share of the machine's CPU capacity used by other processes in the block."""

    share: float

    def __enter__(self) -> OtherLoad:
        self.start = (*machine_cpu_seconds(), own_cpu_seconds())
        return self

    def __exit__(self, *exc_info: object) -> None:
        busy, total, own = (*machine_cpu_seconds(), own_cpu_seconds())
        others = busy - self.start[0] - (own - self.start[2])
        self.share = max(0.0, others) / max(total - self.start[1], 1e-9)


def write_results(out_dir: Path, stem: str, title: str, result: dict[str, Any], table: str) -> None:
    """``out_dir/stem.json`` (the whole result) and ``stem.md`` (title, command, ``table``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (out_dir / f"{stem}.md").write_text(f"# {title}\n\n`{result['command']}`\n\n{table}\n")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_idle(max_seconds: float, window: float = 5.0, threshold: float = 0.1) -> dict[str, float]:
    """Wait up to ``max_seconds`` for a ``window`` of seconds with the CPUs under ``threshold`` busy."""
    start = time.monotonic()
    share = -1.0  # not measured
    while time.monotonic() - start < max_seconds:
        busy, total = machine_cpu_seconds()
        time.sleep(window)
        share = (machine_cpu_seconds()[0] - busy) / max(machine_cpu_seconds()[1] - total, 1e-9)
        if share < threshold:
            break
    return {"waited_s": time.monotonic() - start, "busy_share_last_window": share}


def reset_peak_rss() -> float:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS; return the RSS in MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return proc_status_mb("VmRSS")


def proc_status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def measure_in_subprocesses(module: str, runs: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Per entry, ``python -m module *args`` in a fresh interpreter, side by side; the JSON printed last."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in runs.items()
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate()
        if process.returncode:
            raise RuntimeError(f"{module} {shlex.join(runs[name])} failed:\n{stderr[-2000:]}")
        results[name] = json.loads(stdout.strip().splitlines()[-1])
    return results


def make_prompts(tokenizer, batch: int, length: int) -> list[list[int]]:
    """``batch`` prompts of exactly ``length`` tokens: arithmetic questions run together."""
    problems = load_problems("arithmetic", difficulty=[3])
    prompts, index = [], 0
    for _ in range(batch):
        ids: list[int] = []
        while len(ids) < length:
            ids += tokenizer.encode(problems[index].question + "\n", add_special_tokens=False)
            index += 1
        prompts.append(ids[-length:])
    return prompts


def make_contender(
    name: str, model, tokenizer, prompts: list[list[int]], new_tokens: int, at_eos: bool = False
) -> Callable[[], int]:
    """A zero-argument rollout of ``prompts`` returning the number of generated tokens
    (each row ``new_tokens`` long, or ending at its first EOS when ``at_eos``)."""
    if name == "ours":
        stopper = (EosStopper if at_eos else NeverStopper)(tokenizer, DEFAULT_PROTOCOL)
        sampling = SamplingConfig(max_new_tokens=new_tokens, temperature=1.0, top_p=1.0)
        generator = torch.Generator().manual_seed(0)

        def ours() -> int:
            samples = sample_turns(model, prompts, stopper, sampling, tokenizer.pad_token_id, generator)
            return sum(len(row) for row in samples.tokens)

        return ours
    input_ids = torch.tensor(prompts)
    attention_mask = torch.ones_like(input_ids)
    eos = tokenizer.eos_token_id

    def generate() -> int:
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=new_tokens,
                min_new_tokens=0 if at_eos else new_tokens,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
            )
        ended = output[:, input_ids.shape[1] :] == eos
        lengths = torch.where(ended.any(1), ended.int().argmax(1) + 1, ended.shape[1])
        return int(lengths.sum())

    return generate


def setup(batch: int) -> tuple[Any, Any, list[list[int]]]:
    """Threads, seed, tokenizer, the random-init tiny model (eval mode) and the prompts."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    model = build_tiny_model(tokenizer, seed=0).eval()
    return model, tokenizer, make_prompts(tokenizer, batch, PROMPT_TOKENS)


def time_contenders(batch: int, new_tokens: int, repeats: int) -> dict[str, dict[str, Any]]:
    """Interleaved timed rollouts of every contender in this process; tokens/s per run."""
    model, tokenizer, prompts = setup(batch)
    runs = {name: make_contender(name, model, tokenizer, prompts, new_tokens) for name in CONTENDERS}
    for name in CONTENDERS:
        runs[AT_EOS[name]] = make_contender(name, model, tokenizer, prompts, new_tokens, at_eos=True)
    for run in runs.values():
        run()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in runs}
    tokens: dict[str, int] = {}
    with OtherLoad() as load:
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                tokens[name] = run()
                rates[name].append(tokens[name] / (time.perf_counter() - start))
    return {
        name: {
            "tokens_per_run": tokens[name],
            "tokens_per_s": statistics.median(rates[name]),
            "tokens_per_s_runs": rates[name],
            "other_cpu_share": load.share,
        }
        for name in runs
    }


def peak_memory(name: str, batch: int, new_tokens: int) -> dict[str, float]:
    """One rollout of ``name`` in this (fresh) process: peak RSS and its rise over the pre-rollout RSS."""
    model, tokenizer, prompts = setup(batch)
    run = make_contender(name, model, tokenizer, prompts, new_tokens)
    before = reset_peak_rss()
    run()
    peak = proc_status_mb("VmHWM")
    return {"peak_rss_mb": peak, "rollout_rss_mb": peak - before}


def multi_turn(batch: int, new_tokens: int, repeats: int, policy: str | None) -> dict[str, Any]:
    """``play_episodes`` on ``ExpertMathVectorEnv`` (reference expert, short prompts); policy tokens/s."""
    torch.set_num_threads(THREADS)
    if policy:
        model, tokenizer = load_policy(policy, device="cpu")
    else:
        tokenizer = load_tokenizer()
        model = build_tiny_model(tokenizer, seed=0)
    model.eval()
    envs = ExpertMathVectorEnv(
        batch,
        problems="arithmetic",
        difficulty=3,
        experts="reference",
        prompt_template="{question}\n",
        instructions="",
        max_turn_tokens=new_tokens,
    )
    sampling = SamplingConfig(max_new_tokens=new_tokens)
    backend = LocalBackend(model, tokenizer, envs.protocol, sampling, torch.Generator().manual_seed(0))
    rates, turns = [], []
    play_episodes(backend, tokenizer, envs, [repeats * batch + i for i in range(batch)])  # warm-up
    with OtherLoad() as load:
        for repeat in range(repeats):
            start = time.perf_counter()
            episodes = play_episodes(backend, tokenizer, envs, [repeat * batch + i for i in range(batch)])
            rates.append(sum(e.policy_token_count for e in episodes) / (time.perf_counter() - start))
            turns.append(sum(e.info["turns"] for e in episodes) / batch)
    return {
        "policy": policy or "random-init tiny model",
        "tokens_per_s": statistics.median(rates),
        "tokens_per_s_runs": rates,
        "turns_per_episode": statistics.mean(turns),
        "other_cpu_share": load.share,
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a markdown table plus the ratio line."""
    args, rows = result["args"], result["rows"]
    lines = [
        f"Batch {args['batch']}, prompt {PROMPT_TOKENS} tokens, {args['new_tokens']} new tokens, "
        f"median of {args['repeats']} interleaved runs, {THREADS} threads.",
        "",
        "| contender | tokens/s | peak RSS (MB) | rollout RSS rise (MB) |",
        "|---|---:|---:|---:|",
    ]
    for name in CONTENDERS:
        row = rows[name]
        lines.append(
            f"| {row['label']} | {row['tokens_per_s']:.0f} | {row['peak_rss_mb']:.0f} | "
            f"{row['rollout_rss_mb']:.1f} |"
        )
    multi = rows["multi_turn"]
    lines += [
        f"| {rows[AT_EOS[name]]['label']} | {rows[AT_EOS[name]]['tokens_per_s']:.0f} | - | - |"
        for name in CONTENDERS
    ]
    lines += [
        f"| {multi['label']} | {multi['tokens_per_s']:.0f} | - | - |",
        "",
        f"ours / generate: **{result['ratio_ours_over_generate']:.2f}x** at exact length (target >= 1.5x), "
        f"{result['ratio_at_eos']:.2f}x with rows ending at EOS. "
        f"Multi-turn: {multi['turns_per_episode']:.2f} turns per episode, policy: {multi['policy']}.",
        "",
        f"Other processes used {rows['ours']['other_cpu_share']:.0%} of the CPUs while ours/generate were "
        f"timed, {multi['other_cpu_share']:.0%} during the multi-turn row "
        f"(waited {result['idle_wait']['waited_s']:.0f} s for an idle window first).",
        f"Load before/after: `{result['machine']['uptime']}` / `{result['machine_after']['uptime']}`",
    ]
    return "\n".join(lines)


def run_benchmark(
    batch: int,
    new_tokens: int,
    repeats: int,
    policy: str | None = None,
    wait_idle: float = 0.0,
    out_dir: Path = RESULTS,
) -> dict[str, Any]:
    """Time and measure; write ``rollout_speed.json`` and ``.md`` under ``out_dir``; return the result."""
    command = ["python", "-m", "benchmarks.rollout_speed", "--batch", str(batch)]
    command += ["--new-tokens", str(new_tokens), "--repeats", str(repeats), "--wait-idle", str(wait_idle)]
    command += ["--policy", policy] if policy else []
    idle_wait = wait_for_idle(wait_idle)
    machine = machine_info()
    rows: dict[str, dict[str, Any]] = time_contenders(batch, new_tokens, repeats)
    memory_args = ["--batch", str(batch), "--new-tokens", str(new_tokens)]
    runs = {name: ["--memory-of", name, *memory_args] for name in CONTENDERS}
    for name, memory in measure_in_subprocesses("benchmarks.rollout_speed", runs).items():
        rows[name].update(memory)
    rows["ours"]["label"] = "ours: sample_turns (StaticKVDecoder)"
    rows["generate"]["label"] = "model.generate (sampling, dynamic cache)"
    rows[AT_EOS["ours"]]["label"] = "ours, rows end at EOS (finished rows leave the batch)"
    rows[AT_EOS["generate"]]["label"] = "model.generate, rows end at EOS"
    rows["multi_turn"] = multi_turn(batch, new_tokens, repeats, policy)
    rows["multi_turn"]["label"] = "ours: play_episodes on ExpertMathVectorEnv (env steps included)"
    result = {
        "command": shlex.join(command),
        "args": {
            "batch": batch,
            "new_tokens": new_tokens,
            "repeats": repeats,
            "prompt_tokens": PROMPT_TOKENS,
        },
        "idle_wait": idle_wait,
        "machine": machine,
        "machine_after": machine_info(),
        "rows": rows,
        "ratio_ours_over_generate": rows["ours"]["tokens_per_s"] / rows["generate"]["tokens_per_s"],
        "ratio_at_eos": rows[AT_EOS["ours"]]["tokens_per_s"] / rows[AT_EOS["generate"]]["tokens_per_s"],
        "target_ratio": 1.5,
    }
    write_results(out_dir, "rollout_speed", "Rollout speed", result, markdown(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--policy", help="trained policy directory for the multi-turn row (default: random init)"
    )
    parser.add_argument(
        "--wait-idle", type=float, default=120, help="seconds to wait at most for quiet CPUs before timing"
    )
    parser.add_argument("--memory-of", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        print(json.dumps(peak_memory(args.memory_of, args.batch, args.new_tokens)))
        return
    result = run_benchmark(args.batch, args.new_tokens, args.repeats, args.policy, args.wait_idle)
    print(markdown(result))


if __name__ == "__main__":
    main()
