"""Benchmark ``eapo_gym.verify`` against math-verify: development set, frozen held-out set, hostile inputs.

Both verifiers get one untimed warm-up pass over a set and then the same number of timed passes;
math-verify's result caches are cleared before every pass (ours keeps none). Every call is timed
by wall clock and by the calling thread's CPU time, so a busy machine shows in the wall numbers
only. The development set (``data/verify_pairs.jsonl``) was written alongside the verifier and
tunes it; the held-out set (``data/verify_heldout.json``) was frozen before the verifier was run
on it and is reported separately. Hostile inputs run in a worker thread for ours (math-verify's
signal-based timeouts need the main thread), one at a time. ``--math-verify-tests DIR`` (a checkout of
Math-Verify's ``tests/``) adds our agreement with its plain (gold, prediction, expected) tables.
Writes ``benchmarks/results/verify.json`` and ``verify.md`` and prints the tables.

    python benchmarks/verify_bench.py [--passes 3] [--no-mv-hostile] [--math-verify-tests DIR]
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import platform
import re
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eapo_gym.verify import is_correct  # noqa: E402

DEV = ROOT / "benchmarks" / "data" / "verify_pairs.jsonl"
HELDOUT = ROOT / "benchmarks" / "data" / "verify_heldout.json"
RESULTS = ROOT / "benchmarks" / "results"
_MC_GOLD = re.compile(r"\\?(?:text|textbf)?\{?\(?[A-J]\)?\}?")

# Math-Verify's test files with plain tables, and the two test bodies that count as plain: the
# default comparison helper with only extraction targets chosen, or parse/verify with defaults.
MV_TEST_FILES = (
    "test_all.py",
    "test_boxed.py",
    "test_numina_cases.py",
    "test_open_thoughts.py",
    "test_yujianll.py",
)
_PLAIN_BODY = re.compile(
    r"assert compare_strings\(gold, pred, match_types=(\[[^\]]*\])\) == expected"
    r"|assert int\(verify\(parse\(gold\), parse\(pred\)\)\) == result"
)
# Cases of those tables where we differ on purpose (README, "Answer checking"), by test and index.
DELIBERATE = {
    "test_all.py::test_latex_notation[5]": "a number in prose counts when nothing else does; the test "
    "runs math-verify with LaTeX extraction only",
    "test_all.py::test_latex_notation[6]": "as above",
    "test_yujianll.py::test_string_extraction[9]": "the table expects 1 - 1/e to equal 1 + 1/e",
}


def load_pairs(path: Path = DEV) -> list[dict]:
    """The labelled development pairs: dicts with gold, response, label and category."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_heldout(path: Path = HELDOUT) -> tuple[str, list[dict]]:
    """The freeze date and the labelled pairs of the held-out set."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["frozen"], data["pairs"]


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
        ("many small spans", "$1$, " * 40_000),
        ("many copulas and spans", "is $1$ " * 25_000),
        ("many adjacent boxes", "\\boxed{1} and " * 14_000),
        ("many final-answer markers", "final answer: " * 14_000),
        ("many </think>", "</think>" * 25_000),
        ("long equation chain in prose", "the value is " + "1 = " * 40_000 + "1"),
        (
            "matrix product chain",
            "\\boxed{"
            + ("\\begin{pmatrix}" + " \\\\ ".join(["1 & 2 & 3 & 4"] * 4) + "\\end{pmatrix}") * 10
            + "}",
        ),
    ]


def math_verify_judge():
    """A function (response, gold) -> bool using math-verify's own parse/verify."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    base = [LatexExtractionConfig(), ExprExtractionConfig()]
    choice = [*base, StringExtractionConfig()]

    def judge(response: str, gold: str) -> bool:
        cfg = choice if _MC_GOLD.fullmatch(gold.strip()) else base
        gold_text = gold if "$" in gold or "\\boxed" in gold or "####" in gold else f"${gold}$"
        return bool(verify(parse(gold_text, extraction_config=cfg), parse(response, extraction_config=cfg)))

    return judge


def clear_math_verify_caches() -> None:
    """Empty math-verify's result caches (its compiled-regex caches stay warm)."""
    from math_verify import parser

    for name in ("parse_latex_cached", "parse_expr_cached", "extract_latex"):
        getattr(parser, name).cache_clear()


def _call(judge, response: str, gold: str) -> tuple[bool, float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        verdict = bool(judge(response, gold))
    except Exception:
        verdict = False
    return verdict, time.perf_counter() - wall, time.thread_time() - cpu


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_labelled(judge, pairs: list[dict], passes: int, before_pass=None) -> dict:
    """Accuracy and throughput of ``judge`` on ``pairs``: a warm-up pass, then ``passes`` timed ones.

    Verdicts come from the first timed pass; throughput is answers per second of wall time and
    of CPU time, overall and per category; latencies are per call over all timed passes.
    """

    def one_pass() -> list[tuple[bool, float, float]]:
        if before_pass is not None:
            before_pass()
        return [_call(judge, pair["response"], pair["gold"]) for pair in pairs]

    one_pass()
    timed = [one_pass() for _ in range(passes)]
    calls = [(pair["category"], call) for results in timed for pair, call in zip(pairs, results, strict=True)]
    cat_time: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for category, (_, wall, cpu) in calls:
        cat_time[category][0] += wall
        cat_time[category][1] += cpu
        cat_time[category][2] += 1
    walls = [wall for _, (_, wall, _) in calls]
    cpus = [cpu for _, (_, _, cpu) in calls]
    return _summary(pairs, [verdict for verdict, _, _ in timed[0]], walls, cpus, cat_time)


def _summary(pairs, verdicts, walls, cpus, cat_time) -> dict:
    by_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    wrong = []
    for pair, verdict in zip(pairs, verdicts, strict=True):
        ok = verdict == pair["label"]
        by_cat[pair["category"]][0] += ok
        by_cat[pair["category"]][1] += 1
        if not ok:
            wrong.append(
                {"gold": pair["gold"][-160:], "response": pair["response"][-160:], "label": pair["label"]}
            )
    correct = sum(v[0] for v in by_cat.values())
    return {
        "accuracy": correct / len(pairs),
        "correct": correct,
        "n": len(pairs),
        "answers_per_s_wall": len(walls) / sum(walls),
        "answers_per_s_cpu": len(cpus) / sum(cpus),
        "p50_ms": 1000 * _percentile(walls, 0.5),
        "p99_ms": 1000 * _percentile(walls, 0.99),
        "p99_cpu_ms": 1000 * _percentile(cpus, 0.99),
        "max_ms": 1000 * max(walls),
        "by_category": {
            cat: {
                "n": by_cat[cat][1],
                "accuracy": by_cat[cat][0] / by_cat[cat][1],
                "answers_per_s_wall": cat_time[cat][2] / cat_time[cat][0],
                "answers_per_s_cpu": cat_time[cat][2] / max(cat_time[cat][1], 1e-9),
            }
            for cat in sorted(by_cat)
        },
        "wrong": wrong,
    }


def run_hostile(judge, cases: list[tuple[str, str]], threads: int = 0) -> dict:
    """Worst wall and CPU time and any True verdict on hostile inputs, used as response and as gold.

    With ``threads`` > 0 the calls run concurrently in that many worker threads.
    """
    jobs = [
        (f"{name} [{role}]", args)
        for name, text in cases
        for role, args in (("response", (text, "4")), ("gold", ("\\boxed{4}", text)))
    ]
    if threads:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(lambda job: _call(judge, *job[1]), jobs))
    else:
        results = [_call(judge, *args) for _, args in jobs]
    walls = {label: wall for (label, _), (_, wall, _) in zip(jobs, results, strict=True)}
    cpus = {label: cpu for (label, _), (_, _, cpu) in zip(jobs, results, strict=True)}
    worst = max(walls, key=walls.__getitem__)
    worst_cpu = max(cpus, key=cpus.__getitem__)
    return {
        "runs": len(jobs),
        "threads": threads,
        "worst_s": walls[worst],
        "worst_case": worst,
        "worst_cpu_s": cpus[worst_cpu],
        "worst_cpu_case": worst_cpu,
        "true_verdicts": [
            label for (label, _), (verdict, _, _) in zip(jobs, results, strict=True) if verdict
        ],
        "times_s": walls,
    }


def load_math_verify_tables(tests_dir: Path) -> list[dict]:
    """The cases of Math-Verify's plain (gold, prediction, expected) tables in ``tests_dir``.

    A table counts when its test has exactly those three parameters and its body is one of the
    plain comparisons in ``_PLAIN_BODY``; tables whose test passes a precision or another option
    are left out. Each case is read from the test source with ``ast.literal_eval``.
    """
    cases = []
    for name in MV_TEST_FILES:
        tree = ast.parse((tests_dir / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or len(node.body) != 1:
                continue
            body = _PLAIN_BODY.fullmatch(ast.unparse(node.body[0]))
            for dec in node.decorator_list:
                if body is None or not (
                    isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"
                ):
                    continue
                params = [p.strip() for p in ast.literal_eval(dec.args[0]).split(",")]
                if params[:2] != ["gold", "pred"] or len(params) != 3:
                    continue
                targets = ast.literal_eval(body.group(1)) if body.group(1) else None
                for index, (gold, pred, expected) in enumerate(ast.literal_eval(dec.args[1])):
                    cases.append(
                        {
                            "id": f"{name}::{node.name}[{index}]",
                            "gold": gold,
                            "pred": pred,
                            "expected": bool(expected),
                            "targets": targets,
                        }
                    )
    return cases


def _math_verify_on_table(case: dict) -> bool:
    """math-verify's verdict on a table case, with the extraction targets its test uses."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    if case["targets"] is None:
        return bool(verify(parse(case["gold"]), parse(case["pred"])))
    configs = {"latex": LatexExtractionConfig(boxed_match_priority=0), "expr": ExprExtractionConfig()}
    targets = [configs[t] for t in case["targets"]]
    return bool(verify(parse(case["gold"], targets), parse(case["pred"], targets), float_rounding=6))


def run_math_verify_tables(tests_dir: Path) -> dict:
    """Our agreement with the expected verdicts of Math-Verify's plain tables (and math-verify's own)."""
    cases = load_math_verify_tables(tests_dir)
    ours = {c["id"]: is_correct(c["pred"], c["gold"]) for c in cases}
    theirs = {c["id"]: _math_verify_on_table(c) for c in cases}
    differ = [c["id"] for c in cases if ours[c["id"]] != c["expected"]]
    deliberate = [cid for cid in differ if cid in DELIBERATE]
    counted = len(cases) - len(deliberate)
    return {
        "files": list(MV_TEST_FILES),
        "n": len(cases),
        "agree": len(cases) - len(differ),
        "agree_excluding_deliberate": counted - (len(differ) - len(deliberate)),
        "counted_excluding_deliberate": counted,
        "math_verify_agree": sum(theirs[c["id"]] == c["expected"] for c in cases),
        "deliberate": {cid: DELIBERATE[cid] for cid in deliberate},
        "other_differences": [
            {"id": c["id"], "expected": c["expected"]}
            for c in cases
            if c["id"] in differ and c["id"] not in DELIBERATE
        ],
    }


def render(results: dict) -> str:
    """The markdown tables."""
    dev, mv = results["dev"]["ours"], results["dev"]["math_verify"]
    h_ours, h_mv = results["hostile_ours"], results["hostile_math_verify"]
    mv_worst = f"{h_mv['worst_s']:.3f} s ({h_mv['worst_case']})" if h_mv else "not run"
    lines = [
        f"| development set ({dev['n']} pairs) | eapo_gym.verify | math-verify {_mv_version()} |",
        "|---|---|---|",
        f"| accuracy | {dev['accuracy']:.1%} ({dev['correct']}/{dev['n']}) | "
        f"{mv['accuracy']:.1%} ({mv['correct']}/{mv['n']}) |",
        f"| answers per second, wall | {dev['answers_per_s_wall']:,.0f} | {mv['answers_per_s_wall']:,.0f} |",
        f"| answers per second, CPU | {dev['answers_per_s_cpu']:,.0f} | {mv['answers_per_s_cpu']:,.0f} |",
        f"| p50 latency (wall) | {dev['p50_ms']:.3f} ms | {mv['p50_ms']:.3f} ms |",
        f"| p99 latency (wall) | {dev['p99_ms']:.3f} ms | {mv['p99_ms']:.3f} ms |",
        f"| p99 latency (CPU) | {dev['p99_cpu_ms']:.3f} ms | {mv['p99_cpu_ms']:.3f} ms |",
        f"| worst hostile case ({h_ours['runs']} runs; ours in a worker thread) | "
        f"{h_ours['worst_s']:.3f} s ({h_ours['worst_case']}) | {mv_worst} |",
        f"| True verdicts on hostile inputs | {len(h_ours['true_verdicts'])} | "
        f"{len(h_mv['true_verdicts']) if h_mv else 'not run'} |",
        "",
        "| category | n | accuracy ours | accuracy math-verify | answers/s ours (wall / CPU) "
        "| answers/s math-verify (wall / CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for cat, row in dev["by_category"].items():
        other = mv["by_category"][cat]
        lines.append(
            f"| {cat} | {row['n']} | {row['accuracy']:.0%} | {other['accuracy']:.0%} | "
            f"{row['answers_per_s_wall']:,.0f} / {row['answers_per_s_cpu']:,.0f} | "
            f"{other['answers_per_s_wall']:,.0f} / {other['answers_per_s_cpu']:,.0f} |"
        )
    held = results["heldout"]
    ours_h, mv_h = held["ours"], held["math_verify"]
    lines += [
        "",
        f"| held-out set ({ours_h['n']} pairs, frozen {held['frozen']}) | eapo_gym.verify | math-verify |",
        "|---|---|---|",
        f"| accuracy | {ours_h['accuracy']:.1%} ({ours_h['correct']}/{ours_h['n']}) | "
        f"{mv_h['accuracy']:.1%} ({mv_h['correct']}/{mv_h['n']}) |",
    ]
    for cat, row in ours_h["by_category"].items():
        other = mv_h["by_category"][cat]
        lines.append(f"| {cat} ({row['n']}) | {row['accuracy']:.0%} | {other['accuracy']:.0%} |")
    tables = results.get("math_verify_tables")
    if tables:
        lines += [
            "",
            f"Math-Verify's plain test tables ({', '.join(tables['files'])}): we agree on "
            f"{tables['agree']}/{tables['n']}; {tables['agree_excluding_deliberate']}/"
            f"{tables['counted_excluding_deliberate']} leaving out {len(tables['deliberate'])} deliberate "
            f"differences; math-verify itself agrees on {tables['math_verify_agree']}/{tables['n']}.",
        ]
    return "\n".join(lines)


def _mv_version() -> str:
    try:
        from importlib.metadata import version

        return version("math-verify")
    except Exception:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3, help="timed passes per set, after one warm-up pass")
    parser.add_argument("--no-mv-hostile", action="store_true", help="skip math-verify on the hostile set")
    parser.add_argument("--math-verify-tests", type=Path, help="a checkout of Math-Verify's tests/ folder")
    args = parser.parse_args(argv)

    marker = Path("/tmp") / f"eapo_verify_bench_pwned_{os.getpid()}"
    mv_judge = math_verify_judge()
    frozen, heldout = load_heldout()
    results: dict = {}
    for key, pairs in (("dev", load_pairs()), ("heldout", heldout)):
        results[key] = {
            "ours": run_labelled(is_correct, pairs, args.passes),
            "math_verify": run_labelled(mv_judge, pairs, args.passes, before_pass=clear_math_verify_caches),
        }
    results["heldout"]["frozen"] = frozen
    cases = hostile_cases(marker)
    results["hostile_ours"] = run_hostile(is_correct, cases, threads=1)
    results["hostile_math_verify"] = None if args.no_mv_hostile else run_hostile(mv_judge, cases)
    if args.math_verify_tests:
        results["math_verify_tables"] = run_math_verify_tables(args.math_verify_tests)
    results["injection_created_file"] = marker.exists()

    table = render(results)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (
        f"# Answer verification benchmark\n\nPython {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}, load average at the end {load}. Both verifiers ran in this one process, "
        f"each with one warm-up pass and {args.passes} timed passes per set (math-verify's caches cleared "
        f"before each pass). Injection payload created a file: {results['injection_created_file']}.\n\n"
    )
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "verify.md").write_text(header + table + "\n", encoding="utf-8")
    results.update(
        load_average=os.getloadavg(),
        python=platform.python_version(),
        cpus=os.cpu_count(),
        passes=args.passes,
    )
    (RESULTS / "verify.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
