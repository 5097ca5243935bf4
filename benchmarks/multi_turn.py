"""Multi-turn rollout speed: episodes forced to T = 1, 2, 4 and 8 turns, against the single-turn rate.

    python -m benchmarks.multi_turn [--turns 1,2,4,8] [--batch 64] [--turn-tokens 24] [--repeats 5]
                                    [--device cpu] [--policy DIR] [--wait-idle 60]

Every episode plays exactly T policy turns of exactly ``--turn-tokens`` tokens each, through
``play_episodes`` on ``ExpertMathVectorEnv`` with the reference expert and ``LocalBackend`` (KV reuse
across turns, as training uses): ``ForcedTurns`` bans every token but its script's next one, so
each token still goes through the decoder as a sampled one would. Turns 1..T-1 ask K = 3 queries
(the experts' replies enter the context), turn T answers. The model, batch, prompts (difficulty-5
arithmetic, as ``rollout_speed``'s multi-turn pair) and tokens per turn are the same for every T.

Two rates per T, each the median over ``--repeats`` runs, the T values interleaved after one
warm-up each:

- policy tokens/s: the tokens the policy wrote;
- processed tokens/s: every token the model ran, i.e. each episode's whole final context (prompt,
  turns, replies and notices; KV reuse runs each once), over the rollout's wall time.

Target: at T = 4, processed tokens/s at least 0.8x the single-turn (T = 1) rate. Also shown: the
share of the time in prefills (``rollout_speed.prefill_seconds``) and in expert rounds.

Writes ``benchmarks/results/multi_turn.json`` and ``.md`` (``multi_turn_gpu`` with ``--device cuda``).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.rollout_speed import (
    THREADS,
    OtherLoad,
    machine_info,
    prefill_seconds,
    wait_for_idle,
    write_results,
)
from eapo_agents.rollout.backend import SamplingConfig
from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.sampling import LocalBackend
from eapo_agents.training.policy import build_tiny_model, load_policy
from eapo_gym.protocol import TurnProtocol
from eapo_gym.tokenizer import load_tokenizer
from eapo_gym.vector import ExpertMathVectorEnv

RESULTS = Path(__file__).parent / "results"
TARGET = 0.8  # processed tokens/s at T = 4 over T = 1
TARGET_TURNS = 4


class ForcedTurns:
    """Makes every episode play exactly ``turns`` turns of ``length`` tokens: K queries in each turn but
    the last, which answers. It fills ``LocalBackend``'s logits-constraint slot (``query_lock``): every
    token but the script's next one is banned. A row's turn is read from its context (the number of
    query-open tokens in it, K per consulting turn)."""

    def __init__(self, tokenizer, protocol: TurnProtocol, turns: int, length: int, vocab_size: int) -> None:
        k = protocol.max_queries

        def script(open_tag: str, close_tag: str, count: int) -> list[int]:
            tags = len(tokenizer.encode(open_tag + close_tag, add_special_tokens=False)) * count
            fillers = [(length - tags) // count + (i < (length - tags) % count) for i in range(count)]
            text = "".join(f"{open_tag}{'1' * n}{close_tag}" for n in fillers)
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) != length or min(fillers) < 1:
                raise ValueError(f"cannot script a turn of exactly {length} tokens; choose another length")
            return ids

        self.scripts = {
            "query": torch.tensor(script(protocol.query_open, protocol.query_close, k)),
            "answer": torch.tensor(script(protocol.answer_open, protocol.answer_close, 1)),
        }
        self.opener = tokenizer.encode(protocol.query_open, add_special_tokens=False)[0]
        self.queries_before_answer = (turns - 1) * k
        self.vocab = torch.arange(vocab_size)

    def start(self, contexts: list[list[int]]) -> None:
        device = self.vocab.device
        answering = [context.count(self.opener) >= self.queries_before_answer for context in contexts]
        self.rows = torch.stack([self.scripts["answer" if a else "query"] for a in answering]).to(device)
        self.at = torch.zeros(len(contexts), dtype=torch.long, device=device)

    def banned(self) -> torch.Tensor:
        allowed = self.rows.gather(1, self.at.clamp(max=self.rows.shape[1] - 1)[:, None])
        return self.vocab[None] != allowed

    def update(self, tokens: torch.Tensor) -> None:
        self.at += 1

    def keep(self, rows: torch.Tensor) -> None:
        self.rows, self.at = self.rows[rows], self.at[rows]

    def to(self, device: torch.device) -> ForcedTurns:
        self.vocab = self.vocab.to(device)
        return self


def setup(
    batch: int, device: str, policy: str | None, max_turns: int
) -> tuple[Any, Any, ExpertMathVectorEnv]:
    """The policy (``policy`` directory, else the random-init tiny model) on ``device``, its tokenizer, and
    ``batch`` envs of difficulty-5 arithmetic with the reference expert and short prompts."""
    if policy:
        model, tokenizer = load_policy(policy, device=device)
    else:
        tokenizer = load_tokenizer()
        model = build_tiny_model(tokenizer, seed=0).to(device)
    envs = ExpertMathVectorEnv(
        batch,
        problems="arithmetic",
        difficulty=5,
        experts="reference",
        prompt_template="{question}\n",
        instructions="",
        max_turns=max_turns,
        max_turn_tokens=256,
    )
    return model.eval(), tokenizer, envs


def run_benchmark(
    turns: list[int], batch: int, turn_tokens: int, repeats: int, device: str, policy: str | None, wait: float
) -> dict[str, Any]:
    if device == "cpu":
        torch.set_num_threads(THREADS)
    model, tokenizer, envs = setup(batch, device, policy, max(turns))
    vocab = model.get_output_embeddings().weight.shape[0]
    sampling = SamplingConfig(max_new_tokens=turn_tokens + 1)
    generator = torch.Generator(device=device)
    backend = LocalBackend(model, tokenizer, envs.protocol, sampling, generator)
    forced = {t: ForcedTurns(tokenizer, envs.protocol, t, turn_tokens, vocab).to(model.device) for t in turns}
    max_context = 4096

    def play(t: int, repeat: int) -> tuple[list, float, float, float]:
        backend.query_lock = forced[t]
        generator.manual_seed(repeat)
        seeds = [repeat * batch + i for i in range(batch)]
        waited = envs.expert_seconds
        with prefill_seconds() as prefill:
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            episodes = play_episodes(
                backend, tokenizer, envs, seeds, max_context=max_context, lock_queries=True
            )
            elapsed = time.perf_counter() - start
        return episodes, elapsed, prefill[0], envs.expert_seconds - waited

    for t in turns:
        play(t, repeats)  # warm-up on other seeds
    idle = wait_for_idle(wait) if device == "cpu" else {}
    runs: dict[int, dict[str, list[float]]] = {
        t: {"policy": [], "processed": [], "prefill": [], "experts": [], "turns": []} for t in turns
    }
    with OtherLoad() as load:
        for repeat in range(repeats):
            for t in turns:
                episodes, elapsed, prefill, experts = play(t, repeat)
                run = runs[t]
                run["policy"].append(sum(e.policy_token_count for e in episodes) / elapsed)
                run["processed"].append(sum(len(e.context) for e in episodes) / elapsed)
                run["prefill"].append(prefill / elapsed)
                run["experts"].append(experts / elapsed)
                run["turns"].append(statistics.mean(e.info["turns"] for e in episodes))
    rows = {
        str(t): {
            "policy_tokens_per_s": statistics.median(run["policy"]),
            "processed_tokens_per_s": statistics.median(run["processed"]),
            "policy_runs": run["policy"],
            "processed_runs": run["processed"],
            "prefill_share": statistics.median(run["prefill"]),
            "expert_share": statistics.median(run["experts"]),
            "turns_per_episode": statistics.mean(run["turns"]),
        }
        for t, run in runs.items()
    }
    single = rows[str(min(turns))]
    for row in rows.values():
        row["policy_ratio"] = row["policy_tokens_per_s"] / single["policy_tokens_per_s"]
        row["processed_ratio"] = row["processed_tokens_per_s"] / single["processed_tokens_per_s"]
    command = ["python", "-m", "benchmarks.multi_turn", "--turns", ",".join(map(str, turns))]
    command += ["--batch", str(batch), "--turn-tokens", str(turn_tokens), "--repeats", str(repeats)]
    command += ["--device", device] + (["--policy", policy] if policy else [])
    return {
        "command": shlex.join(command),
        "args": {"batch": batch, "turn_tokens": turn_tokens, "repeats": repeats, "device": device},
        "policy": policy or "random-init tiny model",
        "machine": {**machine_info(), "idle_wait": idle, "other_cpu_share": load.share},
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    args, rows = result["args"], result["rows"]
    lines = [
        f"Batch {args['batch']}, every episode exactly T turns of {args['turn_tokens']} policy tokens "
        f"(K = 3 queries per turn but the last), {result['policy']}, {args['device']}, median of "
        f"{args['repeats']} interleaved runs. Processed tokens: each episode's whole final context.",
        "",
        "| T | turns/episode | policy tokens/s | x T=1 | processed tokens/s | x T=1 | prefill share "
        "| expert share |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t, row in rows.items():
        lines.append(
            f"| {t} | {row['turns_per_episode']:.2f} | {row['policy_tokens_per_s']:.0f} | "
            f"{row['policy_ratio']:.2f} | {row['processed_tokens_per_s']:.0f} | "
            f"{row['processed_ratio']:.2f} | "
            f"{row['prefill_share']:.0%} | {row['expert_share']:.0%} |"
        )
    at_target = rows.get(str(TARGET_TURNS))
    if at_target is not None:
        met = at_target["processed_ratio"] >= TARGET
        lines += [
            "",
            f"Target: at T = {TARGET_TURNS}, processed tokens/s >= {TARGET}x the single-turn rate: "
            f"**{at_target['processed_ratio']:.2f}x**, {'met' if met else 'not met'}.",
        ]
    lines.append(f"Other processes used {result['machine']['other_cpu_share']:.0%} of the CPUs meanwhile.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--turns", default="1,2,4,8", help="comma-separated turn counts; the smallest is the base"
    )
    parser.add_argument("--batch", type=int, default=64, help="episodes per rollout")
    parser.add_argument("--turn-tokens", type=int, default=24, help="policy tokens per turn")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per turn count")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--policy", default=None, help="a policy directory (default: random-init tiny model)")
    parser.add_argument("--wait-idle", type=float, default=60.0, help="most seconds to wait for idle CPUs")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON and table go")
    args = parser.parse_args()
    turns = sorted({int(t) for t in args.turns.split(",")})
    result = run_benchmark(
        turns, args.batch, args.turn_tokens, args.repeats, args.device, args.policy, args.wait_idle
    )
    stem = "multi_turn" + ("_gpu" if args.device.startswith("cuda") else "")
    write_results(Path(args.out), stem, "Multi-turn rollout speed", result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
