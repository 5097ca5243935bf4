"""Short templated word problems (``Ann has 23 apples. She buys 45 more...``) solved with integer steps."""

from __future__ import annotations

import random

from .common import Generated, int_step, start_hint

NAMES = (
    ("Ann", "She"), ("Ben", "He"), ("Cara", "She"), ("Dan", "He"), ("Eve", "She"), ("Finn", "He"),
    ("Gia", "She"), ("Hal", "He"), ("Ivy", "She"), ("Jon", "He"), ("Kim", "She"), ("Leo", "He"),
    ("Mia", "She"), ("Ned", "He"), ("Pia", "She"), ("Sam", "He"),
)  # fmt: skip
ITEMS = ("apples", "pens", "cards", "stickers", "marbles", "books", "eggs", "shells", "coins", "beads")
GOODS = ("pens", "books", "hats", "mugs", "games", "lamps", "shirts", "bags")
GAIN = ("buys", "finds", "gets")
LOSS = ("gives away", "sells", "loses")


class _Story:
    """A running count: each change adds a sentence clause and a solution step."""

    def __init__(self, start: int) -> None:
        self.count = start
        self.clauses: list[str] = []
        self.steps: list[str] = []
        self.verbs: list[str] = []

    def apply(self, rng: random.Random, op: str, amount: int) -> None:
        self.count, step = int_step(self.count, op, amount)
        self.steps.append(step)
        verb = rng.choice([v for v in (GAIN if op == "+" else LOSS) if v not in self.verbs])
        self.verbs.append(verb)
        self.clauses.append(f"{verb} {amount} more" if op == "+" else f"{verb} {amount}")

    def change(self, rng: random.Random, low: int, high: int) -> None:
        """Gain or lose a random amount in [low, high], never going below zero."""
        if self.count >= low and rng.random() < 0.5:
            self.apply(rng, "-", rng.randint(low, min(high, self.count)))
        else:
            self.apply(rng, "+", rng.randint(low, high))


def _counting(rng: random.Random, difficulty: int) -> tuple[str, list[str], str]:
    """Levels 1-4: a count changed by gains and losses (3+: it starts as bags; 4: it is shared out)."""
    name, pronoun = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    if difficulty >= 3:
        bags, per_bag = rng.randint(2, 9), rng.randint(10, 30)
        story = _Story(bags * per_bag)
        story.steps.append(int_step(bags, "*", per_bag)[1])
        opening = f"{name} has {bags} bags of {per_bag} {item}."
    else:
        story = _Story(rng.randint(10, 99))
        opening = f"{name} has {story.count} {item}."
    if difficulty == 4:
        story.apply(rng, "+", rng.randint(10, 99))
        friends = rng.randint(3, 9)
        extra = story.count % friends
        lose = extra + friends * rng.randint(0 if extra else 1, (story.count - extra) // friends - 1)
        story.apply(rng, "-", lose)
        story.steps.append(f"{story.count}/{friends}={story.count // friends}")
        question = (
            f"{opening} {pronoun} {' and '.join(story.clauses)}, then shares the rest equally among "
            f"{friends} friends. How many {item} does each friend get?"
        )
        return question, story.steps, "Find how many are left, then divide them equally."
    for _ in range(1 if difficulty == 1 else 2):
        story.change(rng, 10, 99)
    question = (
        f"{opening} {pronoun} {' and '.join(story.clauses)}. How many {item} does {pronoun.lower()} have?"
    )
    hint = "Add what is gained and subtract what is lost."
    return question, story.steps, ("Multiply first to find the start. " if difficulty == 3 else "") + hint


def _shopping(rng: random.Random) -> tuple[str, list[str], str]:
    """Level 5: the change from paying for two kinds of goods."""
    name, pronoun = rng.choice(NAMES)
    first, second = rng.sample(GOODS, 2)
    (n1, p1), (n2, p2) = [(rng.randint(2, 9), rng.randint(10, 150)) for _ in range(2)]
    c1, s1 = int_step(n1, "*", p1)
    c2, s2 = int_step(n2, "*", p2)
    total, s3 = int_step(c1, "+", c2)
    paid = (total // 100 + rng.randint(1, 3)) * 100
    question = (
        f"{name} buys {n1} {first} at {p1} dollars each and {n2} {second} at {p2} dollars each. "
        f"{pronoun} pays with {paid} dollars. How much change does {pronoun.lower()} get?"
    )
    return question, [s1, s2, s3, int_step(paid, "-", total)[1]], "Find the total cost, then subtract it."


def generate(rng: random.Random, difficulty: int) -> Generated:
    """A word problem whose steps are integer operations and whose answer is the last result."""
    question, steps, strategy = _shopping(rng) if difficulty == 5 else _counting(rng, difficulty)
    return Generated(question, steps[-1].rsplit("=", 1)[1], tuple(steps), (strategy, start_hint(steps)))
