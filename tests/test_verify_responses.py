"""Whole model responses and reference solutions: extraction on both sides, then equivalence."""

from __future__ import annotations

import pytest

from eapo_gym.verify import extract_answer, is_correct


def _matrix(*rows: str) -> str:
    return "\\begin{pmatrix} " + " \\\\ ".join(rows) + " \\end{pmatrix}"


_ONE, _SWAP, _A = _matrix("1 & 0", "0 & 1"), _matrix("0 & 1", "1 & 0"), _matrix("1 & 2", "3 & 4")
_HOPE = " I hope it is correct."


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        # display and inline math with inner spaces
        ("Result \\[ 12 \\]", "12", True),
        ("Result $ 12 $", "12", True),
        ("Result $$ 12 $$", "12", True),
        ("Result \\( 12 \\)", "12", True),
        ("Result \\( (5+7) \\)", "12", True),
        ("Result \\[\n12\n\\]", "12", True),
        ("Result $ 12 $", "13", False),
        ("The total is $ \\frac{3}{4} \\$ = \\frac{6}{8} $", "3/4", True),
        # prose where the last math span is not the answer
        ("Final Answer: The smallest $k$ is 8.", "8", True),
        ("Final Answer: The smallest $k$ is 8.", "9", False),
        ("Hence $y = 7$.", "7", True),
        ("Hence $y = 7$.", "8", False),
        ("Answer: 2.5", "5/2", True),
        ("Answer: 2.5", "2", False),
        ("The maximum of $f$ on $[0, 1]$ is $\\frac{1}{4}$, reached at $x = \\frac{1}{2}$.", "1/4", True),
        ("The two roots are 4 and 9.", "4, 9", True),
        ("We know $p = 2$ and $q = 3$, so $p + q = 5$.", "5", True),
        ("We know $p = 2$ and $q = 3$, so $p + q = 5$.", "2", False),
        ("There are 12 rows of 3 seats, so 12 \\times 3 = 1,080 / 30 = 36 seats in all.", "36", True),
        # number formatting
        ("$\\boxed{45,\\! 120}$", "45120", True),
        ("$\\boxed{45, 120}$", "45120", False),
        ("so $22,\\!222$ in all", "22222", True),
        ("It costs \\$2{,}500.", "2500", True),
        ("It costs \\$2{ , }500.", "2500", True),
        ("Le total est 3,75.", "3.75", True),
        ("Le total est 3,75.", "3.57", False),
        ("\\boxed{0,5}", "0.5", True),
        ("\\boxed{1,500}", "1500", True),
        ("\\boxed{1,500}", "1.5", False),
        # several boxes read as one list
        ("\\boxed{2}, \\boxed{4}, \\boxed{6}", "\\{2, 4, 6\\}", True),
        ("\\boxed{2}, \\boxed{4}, \\boxed{6}", "\\{2, 4\\}", False),
        ("\\boxed{3}\\boxed{4}", "\\boxed{3, 4}", True),
        ("$x = \\boxed{-1}$ or $x = \\boxed{5}$", "5, -1", True),
        ("$\\boxed{(1, 2)} \\quad \\text{and} \\quad \\boxed{(2, 1)}$", "(2, 1), (1, 2)", True),
        ("\\boxed{3} apples and \\boxed{4} pears", "3, 4", True),
        ("I got \\boxed{3}, but that is wrong; it is \\boxed{4}.", "4", True),
        ("I got \\boxed{3}, but that is wrong; it is \\boxed{4}.", "3, 4", False),
        ("First \\boxed{3}.\n\nRechecking everything from the start: \\boxed{4}", "4", True),
        # labelled answers
        ("$\\boxed{m = 3}$ and $\\boxed{n = 7}$", "m = 3, n = 7", True),
        ("$\\boxed{m = 3}$ and $\\boxed{n = 7}$", "m = 7, n = 3", False),
        ("$\\boxed{6, 8}$", "PQ=6, RS=8", True),
        ("$\\boxed{6, 8}$", "PQ=6, RS=9", False),
        ("$(1, 2), (2, 1)$", "a=1,b=2;a=2,b=1", True),
        ("$(1, 2), (2, 3)$", "a=1,b=2;a=2,b=1", False),
        ("$\\boxed{3:5}$", "A_1:A_2=3:5", True),
        ("$\\boxed{5:3}$", "A_1:A_2=3:5", False),
        ("$\\boxed{2}$", "|PQ|=2", True),
        ("$\\boxed{2}$", "\\frac{AB}{CD}=2", True),
        ("$\\boxed{(2, 5)}$", "2 < g(t) < 5", True),
        ("$\\boxed{11}$", "2a + b = 11", False),
        ("Evaluating, $g(3) = 2 \\cdot 3 + 5 = 11$.", "11", True),
        ("Hence $a + b + c = 11$.", "11", True),
        ("$\\boxed{2x + 3 = 11}$", "11", False),
        # other forms
        ("The answer is $\\boxed{\\text{(D)}}$.", "D", True),
        ("The answer is $\\boxed{\\text{(D)}}$.", "C", False),
        ("Among the choices, (D) is correct.", "D", True),
        ("$\\boxed{30^\\circ}$", "30", True),
        ("The rank is $\\mathbf{5}$.", "5", True),
        ("$8 + 9 = 17$", "17", True),
        ("**Answer:** 17", "17", True),
        ("**Answer:** 17", "18", False),
        ("**17**", "17", True),
        ("The answer is 8 (eight).", "8", True),
        ("The answers are 4 and 6 respectively.", "4, 6", True),
        ("\\boxed{1203_4}", "99", True),
        ("\\boxed{1203_4}", "1203", False),
        (f"\\boxed{{{_ONE} + {_A}}}", _matrix("2 & 2", "3 & 5"), True),
        (f"\\boxed{{{_SWAP} {_A}}}", _matrix("3 & 4", "1 & 2"), True),
        (f"\\boxed{{{_A} {_SWAP}}}", _matrix("3 & 4", "1 & 2"), False),
        (f"\\boxed{{3 {_matrix('1', '2')}}}", _matrix("3", "6"), True),
        ("The pairs are $\\\\left( \\\\frac{1}{2}, 3 \\\\right)$.", "(1/2, 3)", True),
    ],
)
def test_answer_forms(response: str, gold: str, expected: bool) -> None:
    assert is_correct(response, gold) is expected


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        # R1 style: the text after </think> decides; the reasoning is the fallback
        ("<think>\nmaybe \\boxed{5}\n</think>\n\nSo the count is $\\boxed{6}$.", "6", True),
        ("<think>\nmaybe \\boxed{5}\n</think>\n\nSo the count is $\\boxed{6}$.", "5", False),
        ("<think>\n2 + 2 = 4, so the answer is 4.\n</think>", "4", True),
        ("<think>\nstill working: 2 + 2 = 4", "4", True),
        ("<think>counting</think>\nThere are **9** of them.", "9", True),
        # Minerva
        ("So $x^2 = 9$.\nFinal Answer: The final answer is $9$. I hope it is correct.", "9", True),
        ("So $x^2 = 9$.\nFinal Answer: The final answer is $3$. I hope it is correct.", "9", False),
        ("\\boxed{200} first.\nFinal Answer: The final answer is $10,455$." + _HOPE, "10455", True),
        ("Final Answer: The final answer is $(1, 3)$." + _HOPE + "\n\nNote: nothing else.", "(1, 3)", True),
        ('Final Answer: The final answer is "$4$ and $5$". I hope it is correct.', "4, 5", True),
        # GSM8K
        ("She buys 3 * 4 = <<3*4=12>>12 eggs.\n#### 12", "12", True),
        ("She buys 3 * 4 = <<3*4=12>>12 eggs.\n#### 12", "13", False),
        ("#### 1,024", "1024", True),
        # markdown
        ("**Step 1.** 3 + 4 = 7\n\n**Final Answer:** 7", "7", True),
        ("### Final Answer\n\nThe value is $7$.", "7", True),
        ("### Final Answer\n\nThe value is $7$.", "8", False),
        ("**Final Answer**\n\\[ \\boxed{7} \\]", "7", True),
        # display math
        ("Therefore\n$$\nx = \\frac{3}{2}\n$$", "3/2", True),
        ("Therefore\n\\[\n\\frac{3}{2}\n\\]", "1.5", True),
        # tags
        ("<answer>\n\\frac{3}{2}\n</answer>", "3/2", True),
        ("reasoning <answer>The value is 1.5.</answer>", "3/2", True),
    ],
)
def test_response_formats(response: str, gold: str, expected: bool) -> None:
    assert is_correct(response, gold) is expected


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        ("7", "We have 3+4=7, so the answer is $\\boxed{7}$.", True),
        ("\\boxed{8}", "We have 3+4=7, so the answer is $\\boxed{7}$.", False),
        ("The answer is 12.", "Each of 3 bags holds 4, so 3 * 4 = <<3*4=12>>12.\n#### 12", True),
        ("$x = 2$", "Solving, $x = 2$.\nFinal Answer: The final answer is $2$. I hope it is correct.", True),
        ("\\boxed{3, 1}", "\\(\\boxed{1}\\) and \\(\\boxed{3}\\).", True),
        ("\\boxed{1, 2}", "\\boxed{1} cats and \\boxed{2} dogs", True),
        ("\\boxed{1, 2}", "\\boxed{1}, no wait, \\boxed{2}", False),
        ("\\boxed{C}", "\\(\\boxed{\\text{C}}\\).", True),
        ("Thursday", "The meeting is on $\\boxed{\\text{Thursday}}$.", True),
        ("\\boxed{\\text{all of them}}", "all of them", True),
        ("\\boxed{\\text{none of them}}", "all of them", False),
        ("3", "$3$ and $4$", False),
    ],
)
def test_gold_is_extracted_like_the_response(response: str, gold: str, expected: bool) -> None:
    assert is_correct(response, gold) is expected


def test_decimal_comma_is_an_option() -> None:
    assert is_correct("\\boxed{1,25}", "1.25")
    assert not is_correct("\\boxed{1,25}", "1.25", decimal_comma=False)
    assert is_correct("\\boxed{1,25}", "1, 25", decimal_comma=False)
    assert is_correct("\\boxed{1, 25}", "1, 25")
    assert not is_correct("\\boxed{1, 25}", "1.25")


def test_decimal_approximation_is_an_option() -> None:
    assert is_correct("\\boxed{1.4142}", "\\sqrt{2}")
    assert not is_correct("\\boxed{1.41}", "\\sqrt{2}")
    assert is_correct("\\boxed{1.41}", "\\sqrt{2}", approx_digits=3)
    assert not is_correct("\\boxed{1.4142}", "\\sqrt{2}", approx_digits=None)
    assert is_correct("\\boxed{\\sqrt{2}}", "1.41")
    assert not is_correct("\\boxed{\\sqrt{2}}", "1.41", approx_digits=None)
    assert not is_correct("\\boxed{0.3333}", "\\frac{1}{3}", approx_digits=1)


def test_join_boxes_is_an_option() -> None:
    response = "$x = \\boxed{2}$ or $x = \\boxed{3}$"
    assert is_correct(response, "2, 3")
    assert not is_correct(response, "2, 3", join_boxes=False)
    assert is_correct(response, "3", join_boxes=False)
    assert not is_correct(response, "3")
    assert extract_answer(response, join_boxes=False) == "3"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<think>\\boxed{1}</think>\nso \\boxed{2}", "2"),
        ("<think>just thinking: 1 + 1 = 2</think>", "2"),
        ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("blah\n#### 42\n", "42"),
        ("**Answer:** 42", "42"),
        ("\\boxed{1}, \\boxed{2} and \\boxed{3}", "1, 2, 3"),
        ("\\boxed{1} but actually \\boxed{2}", "2"),
        ("Thus $x = 5$.", "x = 5"),
        ("Answer $ 9 $", "9"),
        ("The solution set is $x = 1$ and $x = 2$.", "x = 1, x = 2"),
        ("The values are $3$, $4$, and $5$ in order.", "3, 4, 5"),
        ("The value is 10 \\times 3 = 30 in total.", "10 \\times 3 = 30"),
        ("The remainder is $4$.\n\nLet me verify: $19 = 3 \\cdot 5 + 4$.", "4"),
        ("If $x > 1$, then $y$ is $2$.", "2"),
    ],
)
def test_extract_answer_sources(response: str, expected: str) -> None:
    assert extract_answer(response) == expected
