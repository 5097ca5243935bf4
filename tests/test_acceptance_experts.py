"""Acceptance schedules and the built-in experts."""

from __future__ import annotations

import numpy as np
import pytest

from eapo_gym.acceptance import (
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    InverseSchedule,
    LinearSchedule,
    make_schedule,
)
from eapo_gym.experts import ExpertQuery, ReferenceExpert, SymbolicExpert, make_experts
from eapo_gym.experts.reference import EXHAUSTED_REPLY
from eapo_gym.problems import Problem

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


def test_make_schedule_from_specs_and_errors():
    assert make_schedule(0.4)(7) == 0.4
    assert make_schedule("inverse")(4) == 0.25
    assert make_schedule({"type": "linear", "total_steps": 4})(2) == 0.5
    assert make_schedule(lambda step: 0.9)(3) == 0.9
    for bad, error in ((1.5, ValueError), ("sqrt", ValueError), (True, TypeError), (object(), TypeError)):
        with pytest.raises(error):
            make_schedule(bad)


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
