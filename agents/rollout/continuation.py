"""Whole turns from a generator that can stop only at token ids (vLLM, an inference server).

Such a generator is told to stop at the closing tags' last tokens (``stop_ids``). A row that stopped
at one while its turn is not complete (``TurnProtocol.turn_is_complete``: the first of K queries,
or a multi-token tag's last piece inside other text) is continued, until its turn ends, EOS, or
``max_new_tokens``; so a backend built on it stops where the environment ends a turn, as the
``GenerationBackend`` contract asks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eapo_gym.protocol import TurnProtocol

from .backend import Samples

# One generation call: the contexts in, each row's new ids and their log-probabilities out.
GenerateCall = Callable[[list[list[int]]], tuple[list[list[int]], list[list[float]]]]


def stop_ids(tokenizer, protocol: TurnProtocol) -> list[int]:
    """The last token of each closing tag that can end a turn (query and answer)."""
    closing = (protocol.query_close, protocol.answer_close)
    return sorted({tokenizer.encode(tag, add_special_tokens=False)[-1] for tag in closing})


@dataclass
class PartialTurn:
    """One row's turn so far."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    stopped: bool = False


class TurnContinuation:
    """Plays ``generate`` calls until every row's turn is over (``turns``)."""

    def __init__(self, tokenizer, protocol: TurnProtocol, max_new_tokens: int) -> None:
        self.tokenizer, self.protocol, self.max_new_tokens = tokenizer, protocol, max_new_tokens
        self.eos = tokenizer.eos_token_id
        self.stops = set(stop_ids(tokenizer, protocol)) - {self.eos}

    def turns(self, contexts: Sequence[list[int]], generate: GenerateCall) -> Samples:
        """Each context continued by one whole turn, through as many ``generate`` calls as it takes."""
        turns = [PartialTurn() for _ in contexts]
        pending = list(range(len(contexts)))
        while pending:
            ids, logprobs = generate([contexts[row] + turns[row].tokens for row in pending])
            pending = [
                row
                for row, new, scores in zip(pending, ids, logprobs, strict=True)
                if self.extend(turns[row], new, scores)
            ]
        return Samples(
            tokens=[turn.tokens for turn in turns],
            logprobs=[turn.logprobs for turn in turns],
            stopped=[turn.stopped for turn in turns],
        )

    def extend(self, turn: PartialTurn, ids: list[int], logprobs: list[float]) -> bool:
        """Append ``ids`` to ``turn`` up to where the turn ends; whether the row must continue."""
        for token, logprob in zip(ids, logprobs, strict=True):
            if len(turn.tokens) == self.max_new_tokens:
                return False
            turn.tokens.append(token)
            turn.logprobs.append(logprob)
            if token == self.eos:
                turn.stopped = True
                return False
            turn.text += self.tokenizer.decode([token])
            if self.protocol.turn_is_complete(turn.text):
                turn.stopped = True
                return False
            if token in self.stops:
                return len(turn.tokens) < self.max_new_tokens
        return False
