"""Benchmark ``eapo_gym.verify`` against math-verify on a labelled set and a hostile set.

Reports accuracy and answers per second for both verifiers side by side, our p50/p99 latency,
and the worst-case time of each verifier on hostile inputs. Writes
``benchmarks/results/verify.json`` and ``benchmarks/results/verify.md`` and prints the table.

    python benchmarks/verify_bench.py [--repeats 5] [--no-mv-hostile]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eapo_gym.verify import is_correct  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "verify_pairs.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
_MC_GOLD = re.compile(r"\\?(?:text|textbf)?\{?\(?[A-J]\)?\}?")


def load_pairs(path: Path = DATA) -> list[dict]:
    """The labelled (gold, response, label, category) pairs."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def hostile_cases(marker: Path) -> list[tuple[str, str]]:
    """(name, text) pairs of hostile inputs; each is tried as response and as gold."""
    tower = "2^{" * 12 + "2" + "}" * 12
    return [
        ("power tower (LaTeX)", "\\boxed{" + tower + "}"),
        ("power tower (plain)", "9^9^9^9^9^9^9^9"),
        ("power tower (python)", "9**(9**(9**(9**9)))"),
        ("huge factorial", "\\boxed{100000!}"),
        ("factorial of 10^100", "\\boxed{(10^{100})!}"),
        ("iterated factorial", "\\boxed{((10!)!)!}"),
        ("10^6 characters", "1" * 10**6),
        ("10^6 characters boxed", "\\boxed{" + "x+" * 500_000 + "1}"),
        ("5000 nested parentheses", "(" * 5000 + "4" + ")" * 5000),
        ("5000 nested parentheses boxed", "\\boxed{" + "(" * 5000 + "4" + ")" * 5000 + "}"),
        ("\\frac{ repeated", "\\frac{" * 5000),
        ("\\frac{ repeated boxed", "\\boxed{" + "\\frac{" * 1500 + "}"),
        ("NUL bytes", "\\boxed{4\x00}"),
        ("NUL bytes bare", "4\x00\x00"),
        ("lone surrogate", "\\boxed{4\ud800}"),
        ("injection payload", f"\\boxed{{__import__('os').system('touch {marker}')}}"),
        ("injection payload bare", f"__import__('os').system('touch {marker}')"),
        ("\\boxed{ repeated", "\\boxed{" * 50_000),
        ("<answer> repeated", "<answer>" * 25_000),
        ("\\( repeated", "\\(" * 100_000),
        ("{ repeated", "{" * 200_000),
        ("10^{10^{10}}", "\\boxed{10^{10^{10}}}"),
        ("e^{10^{10}}", "\\boxed{e^{10^{10}}}"),
        ("sin(10^100)", "\\boxed{\\sin(10^{100})}"),
        ("huge binomial", "\\boxed{\\binom{10^{9}}{5 \\cdot 10^{8}}}"),
        ("many plus-minus", "\\boxed{" + "\\pm 1" * 40 + "}"),
        ("long sum", "\\boxed{" + "+".join(["x"] * 1500) + "}"),
        ("long list", "\\boxed{" + ",".join(["1"] * 1000) + "}"),
        ("unary minus chain", "\\boxed{" + "-" * 3000 + "4}"),
        ("abs bars", "\\boxed{" + "|" * 10_000 + "}"),
        ("factorial power", "\\boxed{(5000!)^{5000!}}"),
        ("1e99999", "\\boxed{1e99999}"),
        ("nested sqrt", "\\boxed{" + "\\sqrt{" * 60 + "2" + "}" * 60 + "}"),
    ]


def _timed(fn, *args) -> tuple[object, float]:
    start = time.perf_counter()
    try:
        result = fn(*args)
    except Exception:
        result = False
    return result, time.perf_counter() - start


def math_verify_judge():
    """A function (response, gold) -> bool using math-verify's own parse/verify."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    base = [LatexExtractionConfig(), ExprExtractionConfig()]
    choice = [*base, StringExtractionConfig()]

    def judge(response: str, gold: str) -> bool:
        cfg = choice if _MC_GOLD.fullmatch(gold.strip()) else base
        gold_text = gold if "$" in gold else f"${gold}$"
        return bool(verify(parse(gold_text, extraction_config=cfg), parse(response, extraction_config=cfg)))

    return judge


def run_labelled(judge, pairs: list[dict], repeats: int) -> dict:
    """Accuracy, per-category accuracy, throughput and latency percentiles of ``judge``."""
    latencies: list[float] = []
    correct = 0
    by_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    wrong: list[dict] = []
    start = time.perf_counter()
    for rep in range(repeats):
        for pair in pairs:
            verdict, dt = _timed(judge, pair["response"], pair["gold"])
            latencies.append(dt)
            if rep == 0:
                ok = bool(verdict) == pair["label"]
                correct += ok
                by_cat[pair["category"]][0] += ok
                by_cat[pair["category"]][1] += 1
                if not ok:
                    wrong.append(
                        {"gold": pair["gold"], "response": pair["response"][-160:], "label": pair["label"]}
                    )
    total = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    return {
        "accuracy": correct / len(pairs),
        "correct": correct,
        "n": len(pairs),
        "answers_per_s": n / total,
        "p50_ms": 1000 * latencies[n // 2],
        "p99_ms": 1000 * latencies[min(n - 1, int(0.99 * n))],
        "max_ms": 1000 * latencies[-1],
        "by_category": {k: v[0] / v[1] for k, v in sorted(by_cat.items())},
        "wrong": wrong,
    }


def run_hostile(judge, cases: list[tuple[str, str]]) -> dict:
    """Worst time and any True verdict on hostile inputs, used as response and as gold."""
    worst, worst_name, true_verdicts = 0.0, "", []
    times = {}
    for name, text in cases:
        for label, args in (("response", (text, "4")), ("gold", ("\\boxed{4}", text))):
            verdict, dt = _timed(judge, *args)
            times[f"{name} [{label}]"] = dt
            if verdict:
                true_verdicts.append(f"{name} [{label}]")
            if dt > worst:
                worst, worst_name = dt, f"{name} [{label}]"
    return {"worst_s": worst, "worst_case": worst_name, "true_verdicts": true_verdicts, "times_s": times}


def render(ours: dict, mv: dict, hostile_ours: dict, hostile_mv: dict | None) -> str:
    """The markdown results table."""
    mv_worst = f"{hostile_mv['worst_s']:.3f} s ({hostile_mv['worst_case']})" if hostile_mv else "not run"
    lines = [
        f"| metric | eapo_gym.verify | math-verify {_mv_version()} |",
        "|---|---|---|",
        f"| accuracy ({ours['n']} labelled pairs) | {ours['accuracy']:.1%} ({ours['correct']}/{ours['n']}) "
        f"| {mv['accuracy']:.1%} ({mv['correct']}/{mv['n']}) |",
        f"| answers per second | {ours['answers_per_s']:,.0f} | {mv['answers_per_s']:,.0f} |",
        f"| p50 latency | {ours['p50_ms']:.3f} ms | {mv['p50_ms']:.3f} ms |",
        f"| p99 latency | {ours['p99_ms']:.3f} ms | {mv['p99_ms']:.3f} ms |",
        f"| worst hostile case ({len(hostile_ours['times_s'])} runs) | {hostile_ours['worst_s']:.3f} s "
        f"({hostile_ours['worst_case']}) | {mv_worst} |",
        f"| True verdicts on hostile inputs | {len(hostile_ours['true_verdicts'])} | "
        f"{len(hostile_mv['true_verdicts']) if hostile_mv else 'not run'} |",
        "",
        "| category | eapo_gym.verify | math-verify |",
        "|---|---|---|",
    ]
    for cat, acc in ours["by_category"].items():
        lines.append(f"| {cat} | {acc:.0%} | {mv['by_category'].get(cat, 0):.0%} |")
    return "\n".join(lines)


def _mv_version() -> str:
    try:
        from importlib.metadata import version

        return version("math-verify")
    except Exception:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="passes over the labelled set for timing")
    parser.add_argument("--no-mv-hostile", action="store_true", help="skip math-verify on the hostile set")
    args = parser.parse_args(argv)

    pairs = load_pairs()
    marker = Path("/tmp") / f"eapo_verify_bench_pwned_{os.getpid()}"
    cases = hostile_cases(marker)
    is_correct("\\boxed{1}", "1")
    ours = run_labelled(is_correct, pairs, args.repeats)
    mv_judge = math_verify_judge()
    mv_judge("$1$", "1")
    mv = run_labelled(mv_judge, pairs, 1)
    hostile_ours = run_hostile(is_correct, cases)
    hostile_mv = None if args.no_mv_hostile else run_hostile(mv_judge, cases)
    injected = marker.exists()

    table = render(ours, mv, hostile_ours, hostile_mv)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (
        f"# Answer verification benchmark\n\nPython {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}, load average at the end {load}; both verifiers ran in this one process, "
        f"math-verify over one pass, ours over {args.repeats}.\n"
        f"Injection payload created a file: {injected}.\n\n"
    )
    print(table)
    print(f"injection payload created a file: {injected}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "verify.md").write_text(header + table + "\n", encoding="utf-8")
    payload = {
        "load_average": os.getloadavg(),
        "ours": ours,
        "math_verify": mv,
        "hostile_ours": hostile_ours,
        "hostile_math_verify": hostile_mv,
        "injection_created_file": injected,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    (RESULTS / "verify.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
