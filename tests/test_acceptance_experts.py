"""Training-step schedules (rho and the turn budget) and the built-in experts."""

from __future__ import annotations

import numpy as np
import pytest

from eapo_gym.experts import ExpertQuery, ReferenceExpert, SymbolicExpert, make_experts
from eapo_gym.experts.reference import EXHAUSTED_REPLY
from eapo_gym.problems import Problem
from eapo_gym.schedules import (
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    InverseSchedule,
    LinearSchedule,
    parse_schedule,
    turn_budget,
)

PROBLEM = Problem(id="p", question="3x+5=20, x=?", answer="5", solution_steps=("3x=20-5=15", "x=15/3=5"),
                  hints=("Move 5 to the right.",))  # fmt: skip


def test_inverse_schedule_is_the_papers_one_over_s():
    rho = InverseSchedule()
    assert [rho(s) for s in (0, 1, 2, 4, 10, 100)] == [1.0, 1.0, 0.5, 0.25, 0.1, 0.01]
    assert InverseSchedule(scale=10)(5) == 1.0 and InverseSchedule(scale=10)(20) == 0.5
    assert InverseSchedule(floor=0.05)(1000) == 0.05
    assert InverseSchedule(scale=0.5)(1) == 0.5 and InverseSchedule(scale=0.5)(0) == 1.0  # 0: before training


def test_other_schedules_move_from_start_to_end():
    assert LinearSchedule(1.0, 0.0, 10)(5) == pytest.approx(0.5) and LinearSchedule(1.0, 0.0, 10)(50) == 0.0
    assert CosineSchedule(1.0, 0.0, 10)(0) == 1.0 and CosineSchedule(1.0, 0.0, 10)(10) == pytest.approx(0.0)
    assert CosineSchedule(1.0, 0.0, 10)(5) == pytest.approx(0.5)
    assert CosineSchedule(1.0, 0.0, 10)(20) == pytest.approx(0.0)  # stays at the end after total_steps
    assert LinearSchedule(1.0, 0.0, 1)(1) == 0.0 and LinearSchedule(1.0, 0.0, 0)(1) == 0.0
    assert CosineSchedule(1.0, 0.2, 10)(5) == pytest.approx(0.6) and ExponentialSchedule(1.0, 0.5)(0) == 1.0
    assert ExponentialSchedule(1.0, 0.5)(3) == 0.125 and ExponentialSchedule(1.0, 0.5, floor=0.2)(3) == 0.2
    assert ConstantSchedule(0.3)(1000) == 0.3


def test_parse_schedule_from_text_and_errors():
    assert parse_schedule("constant:0.4", length=1)(7) == 0.4 and parse_schedule("constant", 1)(7) == 1.0
    assert parse_schedule("inverse", length=1)(4) == 0.25 and parse_schedule("inverse", 1, scale=8)(4) == 1.0
    assert parse_schedule("linear", length=4)(2) == 0.5 and parse_schedule("linear", length=4)(9) == 0.0
    assert parse_schedule("cosine", length=4)(2) == pytest.approx(0.5)
    assert parse_schedule("exponential:0.5", length=1)(2) == 0.25
    assert parse_schedule("exponential", length=1)(1) == 0.95 and parse_schedule("exponential:1", 1)(9) == 1.0
    for bad in ("exponential:0", "exponential:-0.5", "exponential:1.5", "exponential:nan"):
        with pytest.raises(ValueError, match=r"decay lies in \(0, 1\]"):
            parse_schedule(bad, length=10)
    for bad in ("sqrt", "constant:1.5", "constant:x", "linear:3", ""):
        with pytest.raises(ValueError, match="schedule"):
            parse_schedule(bad, length=10)
    with pytest.raises(ValueError, match="length"):
        parse_schedule("linear", length=0)


def test_the_turn_budget_goes_from_max_turns_to_final_turns():
    share = parse_schedule("linear", length=10)
    assert [turn_budget(share(s), 10, 2) for s in (0, 5, 10, 50)] == [10, 6, 2, 2]
    with pytest.raises(ValueError, match="final_turns"):
        turn_budget(1.0, max_turns=3, final_turns=4)


def query(text: str = "next?", memory: dict | None = None, seed: int = 0, context: str = "") -> ExpertQuery:
    return ExpertQuery(text=text, problem=PROBLEM, context=context, memory={} if memory is None else memory,
                       rng=np.random.default_rng(seed))  # fmt: skip


def test_reference_expert_gives_the_next_step_not_yet_in_the_transcript():
    expert = ReferenceExpert()
    first, second = PROBLEM.solution_steps
    assert expert.consult([query(), query()]) == [first, first]  # parallel queries: the same single step
    assert expert.consult([query(context=f"3x+5=20, x=?\n{first}\n")]) == [second]  # the policy wrote it
    assert expert.consult([query(context=f"{first} {second}")]) == [EXHAUSTED_REPLY]
    assert ReferenceExpert(hints_first=True).consult([query()]) == [PROBLEM.hints[0]]


def test_successive_reference_expert_reveals_a_step_per_query():
    expert, memory = ReferenceExpert(reveal="successive"), {}
    assert expert.consult([query(memory=memory), query(memory=memory)]) == list(PROBLEM.solution_steps)
    assert expert.consult([query(memory=memory)]) == [EXHAUSTED_REPLY]
    with pytest.raises(ValueError, match="reveal"):
        ReferenceExpert(reveal="all")


def test_noisy_reference_expert_corrupts_the_last_number_at_its_rate():
    expert = ReferenceExpert(noise=0.3)
    replies = [expert.consult([query(seed=seed)])[0] for seed in range(400)]
    wrong = [r for r in replies if r != PROBLEM.solution_steps[0]]
    assert 0.2 < len(wrong) / len(replies) < 0.4
    assert all(r.startswith("3x=20-5=") and r != "3x=20-5=15" for r in wrong)


def test_symbolic_expert_answers_the_sub_question_and_not_the_problem(tmp_path):
    expert = SymbolicExpert()
    replies = expert.consult([query("Solve 2x+3=11 please"), query("what is 12*7?"), query("hello")])
    assert replies[0] == "x = 4"
    assert replies[1] == "12*7 = 84"
    assert replies[2] == expert.declined_reply  # no math in the query: the problem is left to the policy
    assert SymbolicExpert(solve_problem=True).consult([query("hello")]) == ["x = 5"]
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}') 1+1=x"
    expert.consult([query(payload)])
    assert not marker.exists()
    assert expert.consult([query("x**999999+1=0")])[0] in ("x = 5", expert.declined_reply)


def test_make_experts_accepts_names_callables_and_none():
    experts = make_experts(["reference", "symbolic", lambda q: "hi"])
    assert [e.name for e in experts] == ["reference", "symbolic", "<lambda>"]
    assert make_experts(None) == [] and make_experts("none") == []
    with pytest.raises(ValueError, match="unknown expert"):
        make_experts("oracle")
    assert len(make_experts("symbolic")) == 1


def test_async_consult_path_gives_the_same_replies():
    import asyncio

    expert = ReferenceExpert()
    replies = asyncio.run(expert.aconsult([query(memory={}), query(memory={})]))
    assert replies == [PROBLEM.solution_steps[0]] * 2
