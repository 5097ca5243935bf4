"""Locked consultation: a logits constraint under which the policy cannot write the query-open tag.

The paper evaluates with the consult action locked: the policy cannot choose to
consult (rather than consult and be declined). A tag may be several tokens long
in a subword tokenizer, so the ban is on whichever token would *complete* the
tag, given the row's text so far:

- a token whose text contains the whole tag is always banned;
- a token whose text starts with the tag's last ``L - k`` characters is banned
  while the row's text ends with the tag's first ``k`` characters.

Every other continuation stays possible, so the policy keeps its distribution
over everything else (renormalised by the softmax).
"""

from __future__ import annotations

import torch


class QueryLock:
    """Per row of a sampling batch, the logits mask that keeps ``tag`` from being generated."""

    def __init__(self, tokenizer, tag: str, vocab_size: int, device: torch.device) -> None:
        pieces = [tokenizer.decode([token]) for token in range(len(tokenizer))]
        pieces += [""] * (vocab_size - len(pieces))  # logits may be wider than the tokenizer
        self.tag = tag
        self.tokenizer = tokenizer
        self.always = torch.tensor([tag in piece for piece in pieces], device=device)
        # completes[k]: tokens that finish the tag when the text ends with tag[:k]
        self.completes = {
            k: torch.tensor([bool(piece) and piece.startswith(tag[k:]) for piece in pieces], device=device)
            for k in range(1, len(tag))
        }
        self.completes = {k: mask for k, mask in self.completes.items() if mask.any()}

    def start(self, contexts: list[list[int]]) -> None:
        """The text each row ends with (as much as a partial tag can need)."""
        self.tails = [
            self.tokenizer.decode(ids[-len(self.tag) :]) if self.completes else "" for ids in contexts
        ]

    def banned(self) -> torch.Tensor:
        """[rows, vocab] True where a token would complete the tag."""
        banned = self.always.expand(len(self.tails), -1).clone()
        for row, tail in enumerate(self.tails):
            for k, completes in self.completes.items():
                if tail.endswith(self.tag[:k]):
                    banned[row] |= completes
        return banned

    def update(self, tokens: torch.Tensor) -> None:
        if self.completes:
            pieces = self.tokenizer.batch_decode(tokens[:, None].tolist())
            self.tails = [
                (tail + piece)[-len(self.tag) :] for tail, piece in zip(self.tails, pieces, strict=True)
            ]

    def keep(self, rows: torch.Tensor) -> None:
        self.tails = [self.tails[row] for row in rows.tolist()]
