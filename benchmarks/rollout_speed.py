"""Rollout throughput: our batched KV-cache sampler (``sample_turns``) versus ``model.generate``,
and multi-turn rollouts with KV reuse across turns versus a re-prefill of every turn.

    python -m benchmarks.rollout_speed [--batch 64] [--new-tokens 60] [--repeats 5] [--policy DIR]
                                       [--wait-idle 120]

Every contender continues the same left-padded batch of ~40-token prompts on the same
randomly initialised tiny model (``build_tiny_model``, seed 0, fp32, CPU) for exactly
``--new-tokens`` sampled tokens (temperature 1, top-p 1, no top-k):

- ours: ``sample_turns`` with ``NeverStopper``, a ``TurnStopper`` that runs its per-token
  stop check as usual but ignores the verdict, so no row ends early;
- ``model.generate``: ``do_sample=True``, ``min_new_tokens=max_new_tokens`` (EOS is
  suppressed), default dynamic KV cache;
- ``model.generate`` with ``cache_implementation="static"``: a preallocated cache, its
  recommended fast configuration (transformers compiles it only on accelerators).

This exact-length set carries the target. A second set lets rows end at their first EOS
on every side (ours: ``EosStopper``; generate: ``eos_token_id``), the case of RL turns that
end at different lengths: ours drops finished rows from the batch, ``generate`` keeps
computing them until the last row ends. Tokens are counted up to each row's EOS. The
remaining differences between the contenders are listed in ``DIFFERENCES`` and in the results.

Timing starts once the CPUs are quiet (``--wait-idle``: the most seconds to wait) and runs
alternate (ours, generate, generate static, ...) after one warm-up each; the table shows
medians and the share of CPU time other processes took meanwhile. Peak memory is read in a
fresh subprocess per contender (Linux ``VmHWM``, reset just before the rollout).

Multi-turn rows time ``play_episodes`` on ``ExpertMathVectorEnv`` with the reference expert,
env steps included. The pair ``multi_turn_reuse`` / ``multi_turn_prefill`` plays EAPO-style
episodes of 3 turns with K = 3 queries per consulting turn: ``ScriptedConsults`` makes the
first two turns of every episode ask 3 queries (each token still goes through the decoder,
as a sampled one would), the third turn is the policy's own. The pair differs only in
``LocalBackend(kv_reuse=...)`` and runs interleaved; it also reports the share of time spent
in prefills. A last row lets the policy play freely (``--policy``: a trained policy directory;
a random-init model rarely writes protocol tags, so nearly every episode ends after one turn).

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import transformers

from eapo_agents.rollout.backend import SamplingConfig
from eapo_agents.rollout.decoding import StaticKVDecoder
from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.sampling import LocalBackend, TurnStopper, sample_turns
from eapo_agents.rollout.teacher import TEACHER_QUERY
from eapo_agents.training.policy import build_tiny_model, load_policy
from eapo_gym.problems import load_problems
from eapo_gym.protocol import DEFAULT_PROTOCOL, TurnProtocol
from eapo_gym.tokenizer import load_tokenizer
from eapo_gym.vector import ExpertMathVectorEnv

RESULTS = Path(__file__).parent / "results"
THREADS = 2
PROMPT_TOKENS = 40
CONTENDERS = ("ours", "generate", "generate_static")
BASELINES = CONTENDERS[1:]
AT_EOS = {name: f"{name}_eos" for name in CONTENDERS}  # the same contenders, rows ending at EOS
LABELS = {
    "ours": "ours: sample_turns (StaticKVDecoder)",
    "generate": "model.generate (sampling, dynamic cache)",
    "generate_static": 'model.generate (sampling, cache_implementation="static")',
    "ours_eos": "ours, rows end at EOS (finished rows leave the batch)",
    "generate_eos": "model.generate (dynamic cache), rows end at EOS",
    "generate_static_eos": "model.generate (static cache), rows end at EOS",
    "multi_turn_reuse": "ours, 3 turns, K = 3: KV reuse across turns (LocalBackend default)",
    "multi_turn_prefill": "ours, 3 turns, K = 3: every turn prefills its whole context (kv_reuse=False)",
    "multi_turn": "ours: play_episodes, the policy plays freely (KV reuse)",
}
DIFFERENCES = (
    "All contenders run the same model, prompts (all 40 tokens long, so no padding), temperature 1 "
    "without top-k or top-p, 2 threads, fp32, CPU, in one process, interleaved.",
    "Forward: ours is a hand-written Llama-family forward over a preallocated cache (q/k/v and gate/up "
    "projections fused, RMSNorm weights folded into them, single-token attention as two batched "
    "matmuls); generate runs the model's own forward (separate projections, SDPA) and its own cache.",
    "Static cache: generate's static cache is not torch.compile'd (transformers auto-compiles it only on "
    "CUDA/XPU/TPU/Neuron, and compiling is not part of the CPU recommendation); ours is not compiled.",
    "Sampling: ours draws by inverse CDF from one uniform per row and returns each token's "
    "log-probability (the rollout needs it); generate draws with torch.multinomial and computes no "
    "log-probabilities (output_scores off).",
    "Exact length: generate masks EOS every step (MinNewTokensLengthLogitsProcessor); ours runs its "
    "turn-stop check every step and ignores the verdict (NeverStopper). Each is a small per-step cost "
    "on its own side.",
    "Rows ending at EOS: ours drops finished rows from the batch once they are a quarter of it; generate "
    "computes them (as padding) until the last row ends.",
    "Output: ours turns tokens and log-probabilities into per-row Python lists; generate returns one "
    "tensor of sequences.",
    "Multi-turn pair: identical apart from kv_reuse (same model, scripted consultations, seeds and "
    "sampling generator seeds, so the same episodes); env steps and tokenisation are in both timings.",
)
KV_REUSE_TARGET = 1.3


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
    (each row ``new_tokens`` long, or ending at its first EOS when ``at_eos``); ``name`` is one of
    ``CONTENDERS``."""
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
    cache = {"cache_implementation": "static"} if name == "generate_static" else {}

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
                **cache,
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


class ScriptedConsults:
    """Makes the first ``turns`` policy turns of every episode ask K = ``protocol.max_queries`` queries.

    It fills ``LocalBackend``'s logits-constraint slot (``query_lock``, where ``QueryLock`` goes): while a row
    follows the script, every token but the script's next one is banned, so the decoder runs each
    step exactly as for a sampled token. Rows that already asked ``turns * K`` queries are free.
    """

    def __init__(self, tokenizer, protocol: TurnProtocol, turns: int, vocab_size: int) -> None:
        if len(tokenizer.encode(protocol.query_open, add_special_tokens=False)) != 1:
            raise ValueError("ScriptedConsults counts queries by the query-open tag's single token")
        query = f"{protocol.query_open}{TEACHER_QUERY}{protocol.query_close}"
        self.script = torch.tensor(tokenizer.encode(query * protocol.max_queries, add_special_tokens=False))
        self.opener = int(self.script[0])
        self.queries = turns * protocol.max_queries
        self.vocab = torch.arange(vocab_size)

    def start(self, contexts: list[list[int]]) -> None:
        self.scripted = torch.tensor([context.count(self.opener) < self.queries for context in contexts])
        self.at = torch.zeros(len(contexts), dtype=torch.long)

    def banned(self) -> torch.Tensor:
        following = self.scripted & (self.at < len(self.script))
        allowed = self.script[self.at.clamp(max=len(self.script) - 1)]
        return following[:, None] & (self.vocab != allowed[:, None])

    def update(self, tokens: torch.Tensor) -> None:
        self.at += 1

    def keep(self, rows: torch.Tensor) -> None:
        self.scripted, self.at = self.scripted[rows], self.at[rows]


@contextmanager
def prefill_seconds() -> Iterator[list[float]]:
    """Within the block, the seconds spent in ``StaticKVDecoder.prefill``, summed in the list's one entry."""
    prefill = StaticKVDecoder.prefill
    spent = [0.0]

    def timed(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        start = time.perf_counter()
        logits = prefill(self, *args, **kwargs)
        spent[0] += time.perf_counter() - start
        return logits

    StaticKVDecoder.prefill = timed
    try:
        yield spent
    finally:
        StaticKVDecoder.prefill = prefill


def rollout_setup(
    batch: int, new_tokens: int, policy: str | None, max_turns: int, difficulty: int
) -> tuple[Any, Any, Any]:
    """The policy (``policy`` directory, else the random-init tiny model), its tokenizer, and ``batch``
    envs on arithmetic of ``difficulty`` with the reference expert and short prompts."""
    torch.set_num_threads(THREADS)
    if policy:
        model, tokenizer = load_policy(policy, device="cpu")
    else:
        tokenizer = load_tokenizer()
        model = build_tiny_model(tokenizer, seed=0)
    envs = ExpertMathVectorEnv(
        batch,
        problems="arithmetic",
        difficulty=difficulty,
        experts="reference",
        prompt_template="{question}\n",
        instructions="",
        max_turns=max_turns,
        max_turn_tokens=new_tokens,
    )
    return model.eval(), tokenizer, envs


def time_rollouts(
    backends: dict[str, LocalBackend],
    tokenizer,
    envs,
    batch: int,
    repeats: int,
    max_context: int,
    scripted: bool = False,
) -> dict[str, dict[str, Any]]:
    """Interleaved ``play_episodes`` runs of each backend after one warm-up each: policy tokens/s,
    the share of the time spent in prefills, turns and queries per episode. Every backend plays
    the same seeds with its sampling generator reseeded alike, so they play the same episodes.
    ``scripted``: the backends' query locks are ``ScriptedConsults``, applied to every turn."""

    def play(backend: LocalBackend, repeat: int) -> list:
        backend.generator.manual_seed(repeat)
        seeds = [repeat * batch + i for i in range(batch)]
        return play_episodes(backend, tokenizer, envs, seeds, max_context=max_context, lock_queries=scripted)

    for backend in backends.values():
        play(backend, repeats)  # warm-up on other seeds
    runs: dict[str, dict[str, list[float]]] = {
        name: {"rates": [], "prefill": [], "turns": [], "queries": []} for name in backends
    }
    with OtherLoad() as load:
        for repeat in range(repeats):
            for name, backend in backends.items():
                with prefill_seconds() as prefill:
                    start = time.perf_counter()
                    episodes = play(backend, repeat)
                    elapsed = time.perf_counter() - start
                run = runs[name]
                run["rates"].append(sum(e.policy_token_count for e in episodes) / elapsed)
                run["prefill"].append(prefill[0] / elapsed)
                run["turns"].append(statistics.mean(e.info["turns"] for e in episodes))
                run["queries"].append(statistics.mean(e.info["consults"] for e in episodes))
    return {
        name: {
            "tokens_per_s": statistics.median(run["rates"]),
            "tokens_per_s_runs": run["rates"],
            "prefill_share": statistics.median(run["prefill"]),
            "turns_per_episode": statistics.mean(run["turns"]),
            "queries_per_episode": statistics.mean(run["queries"]),
            "other_cpu_share": load.share,
        }
        for name, run in runs.items()
    }


def multi_turn_pair(
    batch: int, new_tokens: int, repeats: int, policy: str | None
) -> dict[str, dict[str, Any]]:
    """3-turn episodes, K = 3 queries in each of the first two turns (``ScriptedConsults``), the last
    turn the policy's own: KV reuse across turns against a re-prefill of every turn. Difficulty 5
    problems have 7 solution steps, so each of the 6 queries gets a step from the reference expert."""
    model, tokenizer, envs = rollout_setup(batch, new_tokens, policy, max_turns=3, difficulty=5)
    vocab = model.get_output_embeddings().weight.shape[0]
    sampling = SamplingConfig(max_new_tokens=new_tokens)
    backends = {}
    for name, kv_reuse in (("multi_turn_reuse", True), ("multi_turn_prefill", False)):
        backend = LocalBackend(
            model, tokenizer, envs.protocol, sampling, torch.Generator(), kv_reuse=kv_reuse
        )
        backend.query_lock = ScriptedConsults(tokenizer, envs.protocol, 2, vocab)
        backends[name] = backend
    rows = time_rollouts(backends, tokenizer, envs, batch, repeats, max_context=512, scripted=True)
    for row in rows.values():
        row["policy"] = policy or "random-init tiny model"
    return rows


def multi_turn(batch: int, new_tokens: int, repeats: int, policy: str | None) -> dict[str, Any]:
    """The policy plays freely (KV reuse on), up to the env's default 10 turns."""
    model, tokenizer, envs = rollout_setup(batch, new_tokens, policy, max_turns=10, difficulty=3)
    sampling = SamplingConfig(max_new_tokens=new_tokens)
    backend = LocalBackend(model, tokenizer, envs.protocol, sampling, torch.Generator())
    row = time_rollouts({"multi_turn": backend}, tokenizer, envs, batch, repeats, max_context=384)
    return {**row["multi_turn"], "policy": policy or "random-init tiny model"}


def markdown(result: dict[str, Any]) -> str:
    """The result as a markdown table, the ratio lines and the differences between contenders."""
    args, rows, ratios = result["args"], result["rows"], result["ratios"]
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
    multi_rows = ("multi_turn_reuse", "multi_turn_prefill", "multi_turn")
    lines += [
        f"| {rows[name]['label']} | {rows[name]['tokens_per_s']:.0f} | - | - |" for name in AT_EOS.values()
    ]
    lines += [f"| {rows[name]['label']} | {rows[name]['tokens_per_s']:.0f} | - | - |" for name in multi_rows]
    reuse, prefill, free = (rows[name] for name in multi_rows)
    met = all(ratios[name]["exact"] >= result["target_ratio"] for name in BASELINES)
    kv_met = result["ratio_kv_reuse"] >= KV_REUSE_TARGET
    lines += [
        "",
        *(
            f"ours / {rows[name]['label']}: **{ratios[name]['exact']:.2f}x** at exact length, "
            f"{ratios[name]['eos']:.2f}x with rows ending at EOS."
            for name in BASELINES
        ),
        f"Target >= {result['target_ratio']}x against every baseline at exact length: "
        f"{'met' if met else 'not met'}.",
        "",
        f"KV reuse / re-prefill, 3 turns with K = 3 queries per consulting turn: "
        f"**{result['ratio_kv_reuse']:.2f}x** "
        f"(target >= {KV_REUSE_TARGET}x: {'met' if kv_met else 'not met'}). "
        f"Prefills take {reuse['prefill_share']:.0%} of the rollout time with reuse, "
        f"{prefill['prefill_share']:.0%} without; {reuse['turns_per_episode']:.2f} turns and "
        f"{reuse['queries_per_episode']:.2f} queries per episode, policy: {reuse['policy']} "
        "(the first two turns scripted to consult, the third its own).",
        f"Free play: {free['turns_per_episode']:.2f} turns per episode, policy: {free['policy']}.",
        "",
        f"Other processes used {rows['ours']['other_cpu_share']:.0%} of the CPUs while the single-turn "
        f"contenders were timed, {reuse['other_cpu_share']:.0%} during the KV-reuse pair and "
        f"{free['other_cpu_share']:.0%} during free play "
        f"(waited {result['idle_wait']['waited_s']:.0f} s for an idle window first).",
        f"Load before/after: `{result['machine']['uptime']}` / `{result['machine_after']['uptime']}`",
        "",
        "Differences between the contenders:",
        "",
        *(f"- {difference}" for difference in DIFFERENCES),
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
    rows.update(multi_turn_pair(batch, new_tokens, repeats, policy))
    rows["multi_turn"] = multi_turn(batch, new_tokens, repeats, policy)
    for name, row in rows.items():
        row["label"] = LABELS[name]
    ours, ours_eos = rows["ours"]["tokens_per_s"], rows[AT_EOS["ours"]]["tokens_per_s"]
    ratios = {
        name: {
            "exact": ours / rows[name]["tokens_per_s"],
            "eos": ours_eos / rows[AT_EOS[name]]["tokens_per_s"],
        }
        for name in BASELINES
    }
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
        "ratios": ratios,
        "ratio_ours_over_generate": ratios["generate"]["exact"],
        "ratio_at_eos": ratios["generate"]["eos"],
        "target_ratio": 1.5,
        "ratio_kv_reuse": rows["multi_turn_reuse"]["tokens_per_s"]
        / rows["multi_turn_prefill"]["tokens_per_s"],
        "kv_reuse_target": KV_REUSE_TARGET,
        "differences": list(DIFFERENCES),
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
