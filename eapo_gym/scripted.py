"""A rule-based policy that leans on the experts: for demos, benchmarks and smoke tests."""

from __future__ import annotations

import re

from eapo_gym.protocol import DEFAULT_PROTOCOL, TurnProtocol

_NUMBER = re.compile(r"-?\d+(?:/\d+)?")


class ExpertFollower:
    """Asks the experts until they run out of steps, then answers their last number.

    It never sees the gold answer: it reads only the observation text. With
    ``consult=False`` it answers at once with the last number of the problem
    statement, a no-help baseline.
    """

    def __init__(self, protocol: TurnProtocol = DEFAULT_PROTOCOL, consult: bool = True, max_turns: int = 10):
        self.protocol = protocol
        self.consult = consult
        self.max_turns = max_turns

    def act(self, observation: str, turn: int) -> str:
        replies = re.findall(
            re.escape(self.protocol.reply_open) + r"(.*?)" + re.escape(self.protocol.reply_close), observation
        )
        numbers = [n for reply in replies for n in _NUMBER.findall(reply)] or _NUMBER.findall(observation)
        guess = numbers[-1] if numbers else "0"
        out_of_steps = bool(replies) and replies[-1] == self.protocol.exhausted_notice
        if not self.consult or out_of_steps or turn >= self.max_turns - 1:
            return f"{self.protocol.answer_open}{guess}{self.protocol.answer_close}"
        return f"{self.protocol.query_open}What is the next step?{self.protocol.query_close}"
