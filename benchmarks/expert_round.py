"""Expert rounds: one consult turn of a whole batch, with a slow expert and against a real server.

    python -m benchmarks.expert_round [--queries 64] [--max-tokens 16] [--repeats 3]
                                      [--modes plain,continuous-batching] [--wait-idle 60]
                                      [--episodes 64] [--latency 0.2]

Simulated latency: a callable expert that sleeps ``--latency`` seconds per query answers one
consult turn of ``--episodes`` episodes x K = 3 queries, in ``ExpertMathVectorEnv`` (every
admitted query of the turn in one round) and in Gymnasium's ``SyncVectorEnv`` (the episodes
stepped one after another, each sending its own K queries at once); each turn's time is
divided by one call's. The target is at most 2x for the native round.

The script builds a small random-init model (``build_model``: ``TinyModelConfig``'s size, the
package's character tokenizer) in a temporary directory and serves it with ``transformers serve``
on 127.0.0.1, offline (``HF_HUB_OFFLINE=1``), once per server mode: ``plain`` (one ``generate`` per request,
in turn) and ``continuous-batching`` (``--continuous-batching``: concurrent requests share
decoding steps, as vLLM and SGLang do). For each mode, ``OpenAIExpert`` (``/completions``,
greedy, ``--max-tokens`` new tokens) answers ``--queries`` queries on distinct problems:

- batched round: all queries in one ``aconsult`` (concurrently, on pooled connections);
- one at a time: each query's ``aconsult`` awaited before the next is sent.

The two alternate, after one warm-up each, ``--repeats`` times; the table shows medians of
replies/s and of completion tokens/s (the server's ``usage``), and the ratio batched / one at
a time. Server startup (process start to ``/v1/models`` answering, model loaded) is timed too.

Writes ``benchmarks/results/expert_round.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import httpx
import torch

from benchmarks.rollout_speed import machine_info, wait_for_idle, write_results
from eapo_agents.training.policy import TinyModelConfig
from eapo_gym.env import ExpertMathEnv
from eapo_gym.experts import ExpertQuery, ExpertReply, OpenAIExpert
from eapo_gym.problems import load_problems
from eapo_gym.tokenizer import load_tokenizer
from eapo_gym.vector import ExpertMathVectorEnv

RESULTS = Path(__file__).parent / "results"
MODES = {"plain": [], "continuous-batching": ["--continuous-batching"]}
CONTENDERS = ("batched", "one_at_a_time")


@dataclass(frozen=True)
class LocalServer:
    """A running ``transformers serve``: its OpenAI base URL and how long it took to answer."""

    base_url: str
    startup_s: float
    process: subprocess.Popen


def build_model(path: Path, chat_template: str | None = None, init_std: float = 0.02, seed: int = 0) -> int:
    """Save a random-init tiny model and the package tokenizer (with ``chat_template``, if given) to ``path``.

    The model is a Llama of ``TinyModelConfig``'s size, not the policy's Qwen2: for a ``qwen2``
    directory ``AutoTokenizer`` in transformers 5 (and so ``transformers serve``) replaces the
    character tokenizer with Qwen2's byte-level one, which drops spaces. ``init_std`` is the
    weights' initial standard deviation; a large one (0.5) makes the greedy output depend visibly
    on the prompt. Returns the parameter count.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = copy.deepcopy(load_tokenizer())  # the cached tokenizer stays template-free
    tokenizer.chat_template = chat_template
    size = TinyModelConfig()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden_size, num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads, num_key_value_heads=size.num_heads,
        intermediate_size=size.intermediate_size, max_position_embeddings=size.max_positions,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None, initializer_range=init_std,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return sum(parameter.numel() for parameter in model.parameters())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def transformers_serve(
    model: Path | None = None, flags: Sequence[str] = (), startup_timeout: float = 120.0
) -> Iterator[LocalServer]:
    """``transformers serve`` on a free 127.0.0.1 port, offline; stopped on exit, whatever happens.

    ``model`` pins (and preloads) one local model directory; without it the server loads the
    directory each request names. Waits at most ``startup_timeout`` seconds for ``/v1/models``.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        *([str(model)] if model else []),
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu", *flags]
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    with tempfile.TemporaryFile("w+") as log:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            base_url = f"http://127.0.0.1:{port}"
            while not _answers(f"{base_url}/v1/models"):
                if process.poll() is not None or time.monotonic() - start > startup_timeout:
                    log.seek(0)
                    raise RuntimeError(
                        f"transformers serve did not start (exit {process.poll()}):\n{log.read()[-3000:]}"
                    )
                time.sleep(0.2)
            yield LocalServer(f"{base_url}/v1", time.monotonic() - start, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def round_queries(count: int) -> list[ExpertQuery]:
    """``count`` queries on distinct problems, each from its own episode."""
    problems = list(load_problems("mixed", split="train"))[:count]
    return [ExpertQuery("What is the next step?", problem, memory={}) for problem in problems]


async def _batched(expert: OpenAIExpert, queries: list[ExpertQuery]) -> list[ExpertReply]:
    return await expert.aconsult(queries)


async def _one_at_a_time(expert: OpenAIExpert, queries: list[ExpertQuery]) -> list[ExpertReply]:
    return [(await expert.aconsult([query]))[0] for query in queries]


async def measure_server_round(
    expert: OpenAIExpert, queries: list[ExpertQuery], repeats: int
) -> dict[str, Any]:
    """Batched round versus one at a time on ``expert``, interleaved; medians of replies/s and tokens/s."""
    contenders = {"batched": _batched, "one_at_a_time": _one_at_a_time}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for repeat in range(repeats + 1):  # the first pass warms up
        for name, contender in contenders.items():
            start = time.perf_counter()
            replies = await contender(expert, queries)
            seconds = time.perf_counter() - start
            failed = [reply.error for reply in replies if reply.text is None]
            if failed:
                raise RuntimeError(
                    f"{name}: {len(failed)} of {len(replies)} queries failed, e.g. {failed[0]}"
                )
            if repeat:
                tokens = sum(reply.completion_tokens for reply in replies)
                runs[name].append({"seconds": seconds, "replies_per_s": len(replies) / seconds,
                                   "completion_tokens_per_s": tokens / seconds})  # fmt: skip
    rows = {
        name: {
            "replies_per_s": statistics.median(run["replies_per_s"] for run in runs[name]),
            "completion_tokens_per_s": statistics.median(
                run["completion_tokens_per_s"] for run in runs[name]
            ),
            "runs": runs[name],
        }
        for name in contenders
    }
    rows["ratio_batched_over_one_at_a_time"] = (
        rows["batched"]["replies_per_s"] / rows["one_at_a_time"]["replies_per_s"]
    )
    return rows


def serve_and_measure(model: Path, mode: str, queries: int, max_tokens: int, repeats: int) -> dict[str, Any]:
    """Start ``transformers serve`` in ``mode`` pinned to ``model``, measure a round, stop it."""
    with transformers_serve(model, MODES[mode]) as server:
        expert = OpenAIExpert(
            str(model), server.base_url, endpoint="completions", concurrency=queries, max_tokens=max_tokens,
            temperature=0.0, timeout=600.0,
        )  # fmt: skip
        result = asyncio.run(_measure_and_close(expert, round_queries(queries), repeats))
    return {"server_startup_s": server.startup_s, **result}


async def _measure_and_close(
    expert: OpenAIExpert, queries: list[ExpertQuery], repeats: int
) -> dict[str, Any]:
    try:
        return await measure_server_round(expert, queries, repeats)
    finally:
        await expert.aclose()


def measure_simulated_round(episodes: int, latency: float, repeats: int, queries: int = 3) -> dict[str, Any]:
    """One consult turn (``episodes`` x ``queries`` queries to an expert sleeping ``latency`` s per query)
    in the native vector env and in ``SyncVectorEnv``, interleaved; medians, and each over one call."""

    def slow(query: ExpertQuery) -> str:
        time.sleep(latency)
        return "ok"

    settings = {"problems": "arithmetic", "difficulty": 2, "acceptance": 1.0, "max_queries": queries,
                "expert_timeout": 600.0}  # fmt: skip
    contenders = {
        "native": ExpertMathVectorEnv(episodes, experts=[slow], **settings),
        "sync": gym.vector.SyncVectorEnv([lambda: ExpertMathEnv(experts=[slow], **settings)] * episodes),
    }
    actions = ["<expert>q</expert>" * queries] * episodes
    one_query = round_queries(1)[0]
    seconds: dict[str, list[float]] = {name: [] for name in (*contenders, "single_call")}
    for _ in range(repeats):
        for name, envs in contenders.items():
            envs.reset(seed=0)
            start = time.perf_counter()
            _, _, _, _, infos = envs.step(actions)
            seconds[name].append(time.perf_counter() - start)
            assert list(infos["accepted"]) == [queries] * episodes  # every query was answered
        start = time.perf_counter()
        slow(one_query)
        seconds["single_call"].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "episodes": episodes,
        "queries_per_episode": queries,
        "latency_s": latency,
        "turn_s": medians,
        "turn_s_runs": seconds,
        "native_over_single_call": medians["native"] / medians["single_call"],
        "sync_over_single_call": medians["sync"] / medians["single_call"],
    }


def markdown(result: dict[str, Any]) -> str:
    args = result["args"]
    simulated = result["simulated"]
    lines = [
        f"Simulated latency: one consult turn of {simulated['episodes']} episodes x "
        f"{simulated['queries_per_episode']} queries, an expert that sleeps {simulated['latency_s']:g} s per "
        f"query; median of {args['repeats']} interleaved runs.",
        "",
        "| environment | turn (s) | over one call | target |",
        "|---|---:|---:|---|",
        f"| `ExpertMathVectorEnv` (one round) | {simulated['turn_s']['native']:.3f} | "
        f"**{simulated['native_over_single_call']:.2f}x** | at most 2x "
        f"({'met' if simulated['native_over_single_call'] <= 2 else 'not met'}) |",
        f"| `SyncVectorEnv` (episodes one after another) | {simulated['turn_s']['sync']:.3f} | "
        f"{simulated['sync_over_single_call']:.2f}x | |",
        "",
        f"`transformers serve` on 127.0.0.1 (CPU), random-init tiny model ({result['model_parameters']:,} "
        f"parameters), `/completions`, greedy, {args['max_tokens']} new tokens at most; a round of "
        f"{args['queries']} queries; median of {args['repeats']} interleaved runs.",
        "",
        "| server mode | startup (s) | batched replies/s | one at a time replies/s | ratio | "
        "batched tokens/s | one at a time tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, row in result["modes"].items():
        batched, single = row["batched"], row["one_at_a_time"]
        lines.append(
            f"| {mode} | {row['server_startup_s']:.1f} | {batched['replies_per_s']:.1f} | "
            f"{single['replies_per_s']:.1f} | **{row['ratio_batched_over_one_at_a_time']:.2f}x** | "
            f"{batched['completion_tokens_per_s']:.0f} | {single['completion_tokens_per_s']:.0f} |"
        )
    lines += [
        "",
        f"Load before/after: `{result['machine']['uptime']}` / `{result['machine_after']['uptime']}` "
        f"(waited {result['idle_wait']['waited_s']:.0f} s for an idle window first).",
    ]
    return "\n".join(lines)


def run_benchmark(
    queries: int = 64,
    max_tokens: int = 16,
    repeats: int = 3,
    modes: Sequence[str] = tuple(MODES),
    wait_idle: float = 0.0,
    out_dir: Path = RESULTS,
    episodes: int = 64,
    latency: float = 0.2,
) -> dict[str, Any]:
    """The simulated round, then each server mode; write ``expert_round.json`` and ``.md`` in ``out_dir``."""
    command = ["python", "-m", "benchmarks.expert_round", "--queries", str(queries), "--max-tokens"]
    command += [str(max_tokens), "--repeats", str(repeats), "--modes", ",".join(modes)]
    command += ["--wait-idle", str(wait_idle), "--episodes", str(episodes), "--latency", str(latency)]
    idle_wait = wait_for_idle(wait_idle)
    machine = machine_info()
    simulated = measure_simulated_round(episodes, latency, repeats)
    with tempfile.TemporaryDirectory() as work:
        model = Path(work) / "expert"
        parameters = build_model(model)
        rows = {mode: serve_and_measure(model, mode, queries, max_tokens, repeats) for mode in modes}
    result = {
        "command": shlex.join(command),
        "args": {
            "queries": queries,
            "max_tokens": max_tokens,
            "repeats": repeats,
            "modes": list(modes),
            "episodes": episodes,
            "latency": latency,
        },  # fmt: skip
        "model_parameters": parameters,
        "idle_wait": idle_wait,
        "machine": machine,
        "machine_after": machine_info(),
        "simulated": simulated,
        "modes": rows,
    }
    write_results(out_dir, "expert_round", "Expert round: batched vs one at a time", result, markdown(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=64, help="queries in the round")
    parser.add_argument("--max-tokens", type=int, default=16, help="new tokens per reply at most")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES), help=f"server modes, from {', '.join(MODES)}")
    parser.add_argument(
        "--wait-idle", type=float, default=60, help="seconds to wait at most for quiet CPUs before timing"
    )
    parser.add_argument("--episodes", type=int, default=64, help="episodes in the simulated consult turn")
    parser.add_argument(
        "--latency", type=float, default=0.2, help="seconds the simulated expert takes per query"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown server modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    result = run_benchmark(
        args.queries,
        args.max_tokens,
        args.repeats,
        modes,
        args.wait_idle,
        episodes=args.episodes,
        latency=args.latency,
    )
    print(markdown(result))


if __name__ == "__main__":
    main()
