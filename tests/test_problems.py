"""Problem sources: generators, files, records, CHAMP, reasoning-gym and ``load_problems``."""

from __future__ import annotations

import ast
import json
import operator
import os
import re
import statistics
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from eapo_gym.problems import (
    GeneratedProblemSet,
    ListProblemSet,
    Problem,
    generate_problem,
    load_file,
    load_problems,
    problem_from_dict,
)
from eapo_gym.problems.generators import KINDS
from eapo_gym.problems.splits import split_of

LEVELS = (1, 2, 3, 4, 5)


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def exact(expression: str, x: Fraction | None = None) -> Fraction:
    """Evaluate ``expression`` exactly in Fractions (``3x`` and ``4(`` multiply) by walking its AST."""

    def value(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.Name) and node.id == "x" and x is not None:
            return x
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"unexpected syntax in {expression!r}")

    return value(ast.parse(re.sub(r"(\d)([x(])", r"\1*\2", expression), mode="eval").body)


def sample(kind: str, difficulty: int, n: int = 60, split: str = "train") -> list[Problem]:
    return [generate_problem(kind, split, difficulty, i) for i in range(n)]


# ---------------------------------------------------------------- generators


def test_generation_is_deterministic_by_seed_and_index_across_processes():
    ids = [("arithmetic", "train", 2, 17), ("linear", "test", 5, 3), ("word", "train", 4, 0)]
    here = [generate_problem(*key) for key in ids]
    assert here == [generate_problem(*key) for key in ids]
    code = (
        "from eapo_gym.problems import generate_problem as g; "
        f"print([(p.question, p.answer, p.solution_steps) for p in [g(*k) for k in {ids!r}]])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str([(p.question, p.answer, p.solution_steps) for p in here])
    assert generate_problem("arithmetic", "train", 2, 18) != here[0]
    assert generate_problem("arithmetic", "train", 2, 17, seed=1).question != here[0].question


def test_problem_sets_index_and_sizes():
    train, test = GeneratedProblemSet("linear"), GeneratedProblemSet("linear", split="test")
    assert (len(train), len(test)) == (10_000, 500)
    assert train[-1] == train[9_999] and train[3] == train[3]
    with pytest.raises(IndexError):
        train[10_000]
    mixed = load_problems("mixed", size=40)
    assert [mixed[i].kind for i in range(8)] == list(KINDS) * 2
    assert [mixed[i].difficulty for i in range(0, 20, 4)] == list(LEVELS)
    assert {p.difficulty for p in load_problems("word", difficulty=3, size=20)} == {3}
    assert {p.difficulty for p in load_problems("word", difficulty=[1, 2], size=20)} == {1, 2}
    for bad in ({"difficulty": 6}, {"split": "all"}, {"size": 0}):
        with pytest.raises(ValueError):
            load_problems("arithmetic", **bad)


def test_train_and_test_are_disjoint():
    train = {p.question for p in GeneratedProblemSet(split="train", size=4_000)}
    test_problems = list(GeneratedProblemSet(split="test", size=1_000))
    test = {p.question for p in test_problems}
    assert len(train) > 3_000 and len(test) > 700
    assert not train & test
    assert all(split_of(q) == "test" for q in test) and all(split_of(q) == "train" for q in train)
    assert all(p.id.split("/")[1] == "test" for p in test_problems)


def test_difficulty_adds_steps_and_work():
    for kind in KINDS:
        per_level = [sample(kind, d) for d in LEVELS]
        steps = [statistics.mean(len(p.solution_steps) for p in ps) for ps in per_level]
        work = [statistics.mean(sum(map(len, p.solution_steps)) for p in ps) for ps in per_level]
        size = [
            statistics.mean(max(map(int, re.findall(r"\d+", p.question))) for p in ps) for ps in per_level
        ]
        assert steps == sorted(steps) and steps[-1] > steps[0], (kind, steps)
        assert work == sorted(set(work)), (kind, work)
        assert size[-1] > size[0], (kind, size)


def test_generated_problems_are_short_ascii_with_steps_and_hints():
    for kind in KINDS:
        for d in LEVELS:
            for p in sample(kind, d, 30):
                assert p.question.isascii() and all(s.isascii() for s in p.solution_steps)
                assert p.solution_steps and 1 <= len(p.hints) <= 2
                assert re.fullmatch(r"-?\d+(/\d+)?", p.answer), p
                assert p.solution_steps[-1].endswith(f"={p.answer}"), p
                assert (p.source, p.kind, p.difficulty) == ("generated", kind, d)
        assert max(len(p.question) for p in sample(kind, 1)) <= (80 if kind == "word" else 15)


def test_arithmetic_and_fraction_answers_recomputed():
    for kind in ("arithmetic", "fractions"):
        for d in LEVELS:
            for p in sample(kind, d):
                assert p.question.endswith("=?")
                value = exact(p.question[:-2])
                assert p.answer == str(value)  # str(Fraction) is in lowest terms: "7/12", "-3"
                for step in p.solution_steps:  # every "a=b=c" link of every step holds
                    parts = step.split("=")
                    assert len({exact(part) for part in parts}) == 1, step


def test_linear_answers_recomputed():
    for d in LEVELS:
        for p in sample("linear", d):
            lhs, rhs = p.question.removesuffix(", x=?").split("=")

            def f(x: Fraction, lhs: str = lhs, rhs: str = rhs) -> Fraction:
                return exact(lhs, x) - exact(rhs, x)

            slope = f(Fraction(1)) - f(Fraction(0))
            assert slope != 0
            solution = -f(Fraction(0)) / slope
            assert solution.denominator == 1 and p.answer == str(solution)


def test_word_problem_steps_are_correct_arithmetic():
    for d in LEVELS:
        for p in sample("word", d):
            for step in p.solution_steps:
                left, right = step.split("=")
                assert exact(left) == exact(right), step
            numbers = re.findall(r"\d+", p.question)
            assert re.findall(r"\d+", p.solution_steps[0].split("=")[0])[0] in numbers


def test_get_round_trips_ids_and_rejects_others():
    for problems in (
        load_problems("mixed", size=500),
        load_problems("fractions", split="test", difficulty=4, size=50),
        load_problems("linear", seed=7, size=50),
    ):
        for p in list(problems)[::7]:
            assert problems.get(p.id) == p
    mixed = load_problems("mixed", size=500)
    assert mixed[0].id == "arithmetic/train/d1/0" and mixed[25].id == "linear/train/d2/1"
    assert load_problems("linear", seed=7, size=5)[0].id == "linear/train/d1/0/s7"
    big = load_problems("word", size=10**12)
    assert big.get("word/train/d5/199999999999").id == "word/train/d5/199999999999"  # O(1)
    arithmetic_d2 = load_problems("arithmetic", difficulty=2, size=50)
    for bad in (
        "arithmetic/test/d2/3",  # other split
        "arithmetic/train/d3/3",  # other difficulty
        "word/train/d2/3",  # other kind
        "arithmetic/train/d2/50",  # beyond size
        "arithmetic/train/d2/03",  # not canonical
        "arithmetic/train/d2/3/s1",  # other seed
        "nonsense",
    ):
        with pytest.raises(KeyError, match="arithmetic|id"):
            arithmetic_d2.get(bad)


# ---------------------------------------------------------------- files and records

GSM8K = [
    {
        "question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in all?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72",
    },
    {"question": "A big sum?", "answer": "It is 1,000+234 = <<1000+234=1234>>1,234.\n#### 1,234"},
]
MATH = [
    {
        "problem": "What is $\\frac{1}{4}+\\frac{1}{4}$?",
        "solution": "We add: $$\n\\frac14+\\frac14=\\frac{2}{4}\n$$\nSo it is $\\boxed{\\frac{1}{2}}$.",
        "level": "Level 3",
        "type": "Prealgebra",
    },
    {"problem": "Find $x$ if $x+1=3$.", "solution": "Subtract 1. Then $x=\\boxed{2}$.", "level": "Level 1"},
    {"problem": "Odd level?", "solution": "It is $\\boxed{5}$.", "level": "Level ?", "split": "test"},
]


def write_jsonl(path, records, extra_lines=()):
    path.write_text("\n".join([json.dumps(r) for r in records] + list(extra_lines)) + "\n")
    return path


def test_gsm8k_jsonl(tmp_path):
    problems = load_file(write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K), split="all")
    first, second = problems
    assert first.answer == "72" and second.answer == "1234"
    assert first.solution_steps == (
        "Natalia sold 48/2 = 24 clips in May.",
        "Natalia sold 48+24 = 72 clips altogether.",
    )
    assert first.id == "gsm8k/0" and first.source == "gsm8k" and problems.get("gsm8k/1") == second


def test_math_jsonl_boxed_answer_levels_and_splits(tmp_path):
    path = write_jsonl(tmp_path / "math.jsonl", MATH, extra_lines=["", "   "])
    problems = load_problems(path, split="all")
    first, second, third = problems
    assert first.answer == "\\frac{1}{2}" and first.difficulty == 3 and first.kind == "Prealgebra"
    assert first.solution_steps[0] == "We add: $$ \\frac14+\\frac14=\\frac{2}{4} $$"
    assert second.solution_steps == ("Subtract 1.", "Then $x=\\boxed{2}$.") and second.answer == "2"
    assert third.difficulty is None and third.metadata["split"] == "test"
    assert [p.answer for p in load_problems(path, split="all", difficulty=1)] == ["2"]
    assert "5" in [p.answer for p in load_problems(path, split="test")]
    assert "5" not in [p.answer for p in load_problems(path, split="train")]


def test_hash_split_of_a_file_is_disjoint_and_complete(tmp_path):
    records = [{"question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(400)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"problems": records}))
    train, test = load_file(path), load_file(path, split="test")
    assert 10 < len(test) < 80 and len(train) + len(test) == 400
    assert not {p.question for p in train} & {p.question for p in test}
    assert len(load_file(path, split="test", test_fraction=0.5)) > 150
    assert len(load_file(path, size=7)) == 7
    with pytest.raises(ValueError, match="no difficulty levels"):
        load_file(path, difficulty=2)


def test_malformed_records_name_file_and_line(tmp_path):
    bad_json = write_jsonl(tmp_path / "bad.jsonl", GSM8K, extra_lines=['{"question": "x", "answer": '])
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: invalid JSON"):
        load_file(bad_json)
    no_answer = write_jsonl(tmp_path / "noanswer.jsonl", [GSM8K[0], {"question": "What?"}])
    with pytest.raises(ValueError, match=r"noanswer\.jsonl:2: .*answer"):
        load_file(no_answer)
    not_object = write_jsonl(tmp_path / "list.jsonl", [[1, 2]])
    with pytest.raises(ValueError, match=r"list\.jsonl:1: .*JSON object"):
        load_file(not_object)
    bad_level = write_jsonl(tmp_path / "level.jsonl", [{"question": "q", "answer": "1", "level": "hard"}])
    with pytest.raises(ValueError, match=r"level\.jsonl:1: difficulty/level"):
        load_file(bad_level)
    with pytest.raises(ValueError, match="must end in"):
        load_file(tmp_path / "problems.csv")


def test_problem_from_dict_fields():
    p = problem_from_dict(
        {"question": "q", "answer": 3.0, "solution": ["a", "b"], "hints": "think", "id": 7, "extra": 1},
        default_id="unused",
    )
    assert (p.id, p.answer, p.solution_steps, p.hints, p.metadata) == (
        "7",
        "3",
        ("a", "b"),
        ("think",),
        {"extra": 1},
    )
    nested = problem_from_dict(
        {"problem": "q", "solution": "So $\\boxed{\\frac{a}{b^{2}}}$."}, default_id="d"
    )
    assert nested.answer == "\\frac{a}{b^{2}}" and nested.id == "d"
    for bad in (
        {"answer": "1"},
        {"question": "q", "answer": True},
        {"question": "q", "answer": "1", "hints": 3},
    ):
        with pytest.raises(ValueError):
            problem_from_dict(bad, default_id="d")


def test_list_of_dicts_problems_and_problem_sets():
    records = [{"question": f"{i}+1=?", "answer": i + 1, "difficulty": 1 + i % 2} for i in range(30)]
    everything = load_problems(records, split="all")
    assert len(everything) == 30 and everything[4].answer == "5" and everything[4].id == "user/4"
    assert {p.difficulty for p in load_problems(records, split="all", difficulty=2)} == {2}
    assert len(load_problems(records, split="train")) + len(load_problems(records, split="test")) == 30
    with pytest.raises(ValueError, match="problem record 1: "):
        load_problems([{"question": "a", "answer": "1"}, {"question": "b"}])
    problems = [Problem(id="a", question="1+1=?", answer="2"), Problem(id="b", question="2+2=?", answer="4")]
    as_set = load_problems(problems)
    assert isinstance(as_set, ListProblemSet) and as_set.get("b").answer == "4"
    assert load_problems(as_set) is as_set
    with pytest.raises(ValueError, match="arithmetic.*champ.*reasoning_gym"):
        load_problems("algebra")
    with pytest.raises(TypeError):
        load_problems([])


# ---------------------------------------------------------------- CHAMP and reasoning-gym


def test_champ_loads_270_problems_with_steps_and_hints():
    champ = load_problems("champ", split="all")
    assert len(champ) == 270
    assert all(p.solution_steps and p.answer and p.question for p in champ)
    assert sum(bool(p.hints) for p in champ) >= 250 and all(
        isinstance(h, str) for p in champ for h in p.hints
    )
    first = champ.get("champ/P_Combinatorics_1")
    assert first.answer == "239" and first.kind == "Combinatorics" and first.metadata["hint_ids"]
    assert first.hints[0].startswith("Let x_n, y_n, z_n")
    train, test = load_problems("champ"), load_problems("champ", split="test")
    assert len(train) + len(test) == 270 and not {p.id for p in train} & {p.id for p in test}
    with pytest.raises(ValueError, match="no difficulty levels"):
        load_problems("champ", difficulty=1)


def test_reasoning_gym_adapter():
    pytest.importorskip("reasoning_gym")
    train = load_problems("reasoning_gym:basic_arithmetic", size=6)
    test = load_problems("reasoning_gym:basic_arithmetic", split="test", size=6, seed=3)
    assert len(train) == 6 and all(isinstance(p.answer, str) and p.answer for p in train)
    assert train[0].id == "reasoning_gym/basic_arithmetic/train/0" and train.get(train[5].id) == train[5]
    assert test[1].id == "reasoning_gym/basic_arithmetic/test/1/s3" and test.get(test[1].id) == test[1]
    assert all(split_of(p.question) == "test" for p in test)
    assert [p.question for p in train] == [
        p.question for p in load_problems("reasoning_gym:basic_arithmetic", size=6)
    ]
    with pytest.raises(KeyError):
        train.get("reasoning_gym/basic_arithmetic/test/0")


def test_reasoning_gym_missing_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    with pytest.raises(ImportError, match=r"pip install 'eapo-gym\[reasoning-gym\]'"):
        load_problems("reasoning_gym:basic_arithmetic")
