"""ExpertMathEnv: a math problem per episode, with experts the policy may consult.

One ``step`` is one policy turn (``action_mode="text"``) or one token
(``action_mode="token"``). A turn is free reasoning followed by up to K
``<expert>`` queries or an ``<answer>``; see ``eapo_gym.protocol``. Queries are
admitted with probability rho (the episode's ``acceptance``; a trainer anneals it
with ``eapo_gym.schedules`` and passes it at reset), dispatched to the experts in
parallel, and their replies appended to the observation.

Reward, paid when the episode ends::

    R = reward_correct   if the answer is verifiably correct
        reward_format    if an answer was given in the format but is wrong
        0                otherwise (no answer, or turn budget exhausted)
    R -= consult_cost * number_of_queries
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from eapo_gym.experts import ExpertPanel, ExpertQuery, ExpertSpec, make_experts
from eapo_gym.experts.dispatch import ExpertOutcome
from eapo_gym.problems import Problem, ProblemSet, load_problems
from eapo_gym.protocol import FeedbackSegment, TurnProtocol
from eapo_gym.spaces import UnicodeText
from eapo_gym.tokenizer import TOKENIZER_DIR, load_tokenizer
from eapo_gym.verify import is_correct

DEFAULT_INSTRUCTIONS = (
    "Solve the problem. To ask experts, write up to {max_queries} questions as "
    "{query_open}question{query_close} and end your turn; replies arrive as "
    "{reply_open}reply{reply_close}, and an expert may be unavailable. "
    "Give the final answer as {answer_open}answer{answer_close}."
)
DEFAULT_PROMPT_TEMPLATE = "{instructions}\nProblem: {question}\n"


class ExpertMathEnv(gym.Env):
    """Gymnasium environment for expert-assisted math reasoning (EAPO, arXiv 2509.23730).

    Keywords beyond the reward and budget knobs:

    - ``problems``, ``split``, ``difficulty``: the problem source (see ``eapo_gym.problems.load_problems``).
    - ``experts``: a name (``"reference"``, ``"symbolic"``), an ``Expert``, a callable, a list, or None.
    - ``acceptance``: rho, the probability that a query is answered; ``max_turns``: the turn budget.
      Both are the episodes' defaults: ``reset(options={"acceptance": rho, "max_turns": n})``
      sets them for one episode (n <= max_turns), as a trainer does at each training step
      with ``eapo_gym.schedules`` (EAPO anneals rho and shrinks the budget).
    - ``max_queries``: K, the most queries one turn may send (extra ones are ignored).
    - ``parallel_experts``: send a turn's queries at once (True) or one after another (False).
    - ``expert_timeout``: seconds a turn waits for its replies before an expert counts as failed.
    - ``protocol``: the tag syntax (``TurnProtocol``); ``prompt_template`` / ``instructions``: the prompt.
    - ``tokenizer``: token mode's tokenizer, an object or a local path (the package's by default).
    - ``max_turn_chars`` / ``max_turn_tokens``: a longer turn is cut there; ``max_answer_chars``: a
      longer answer is not well-formed; ``max_prompt_chars``: a longer problem statement is an error.
    """

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(
        self,
        problems: str | Sequence[dict] | ProblemSet = "mixed",
        split: str = "train",
        difficulty: int | None = None,
        experts: ExpertSpec | Sequence[ExpertSpec] | None = "reference",
        acceptance: float = 1.0,
        max_turns: int = 10,
        reward_correct: float = 1.0,
        reward_format: float = 0.1,
        consult_cost: float = 0.0,
        action_mode: str = "text",
        render_mode: str | None = None,
        *,
        max_queries: int = 3,
        parallel_experts: bool = True,
        expert_timeout: float = 60.0,
        protocol: TurnProtocol | None = None,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        instructions: str = DEFAULT_INSTRUCTIONS,
        tokenizer: Any = None,
        max_turn_chars: int = 4096,
        max_turn_tokens: int = 512,
        max_answer_chars: int = 256,
        max_reply_chars: int = 2000,
        max_prompt_chars: int = 16384,
    ) -> None:
        if action_mode not in ("text", "token"):
            raise ValueError(f"action_mode must be 'text' or 'token', got {action_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self.problems = load_problems(problems, split=split, difficulty=difficulty)
        self.protocol = replace(protocol or TurnProtocol(), max_queries=max_queries)
        self.panel = ExpertPanel(make_experts(experts), expert_timeout, parallel_experts, max_reply_chars)
        self.acceptance = _share(acceptance, "acceptance", "a probability")
        self.max_turns = max_turns
        self.acceptance_rate, self.turn_budget = self.acceptance, max_turns  # this episode's
        self.reward_correct = reward_correct
        self.reward_format = reward_format
        self.consult_cost = consult_cost
        self.action_mode = action_mode
        self.render_mode = render_mode
        self.prompt_template = prompt_template
        self.instructions = instructions.format(**vars(self.protocol)) if instructions else ""
        self.max_turn_chars = max_turn_chars
        self.max_turn_tokens = max_turn_tokens
        self.max_answer_chars = max_answer_chars
        self.max_prompt_chars = max_prompt_chars
        self._tokenizer_spec = tokenizer

        max_feedback = self.protocol.max_queries * (max_reply_chars + 2 * len(self.protocol.reply_close)) + 2
        self.max_observation_chars = max_prompt_chars + len(self.instructions) + len(prompt_template)
        self.max_observation_chars += max_turns * (max_turn_chars + max_feedback)
        if action_mode == "text":
            self.action_space = UnicodeText(max_turn_chars)
            self.observation_space = UnicodeText(self.max_observation_chars)
        else:
            self.action_space = spaces.Discrete(len(self.tokenizer))
            self.observation_space = spaces.Sequence(spaces.Discrete(len(self.tokenizer)), stack=True)
        self.problem: Problem | None = None

    # ---- public helpers -------------------------------------------------------------------

    @cached_property
    def tokenizer(self):
        """Token mode's tokenizer: the package's character tokenizer unless one was given."""
        spec = self._tokenizer_spec
        if spec is None or isinstance(spec, str | Path):
            return load_tokenizer(spec or TOKENIZER_DIR)
        return spec

    @property
    def transcript(self) -> str:
        """The episode so far as text: prompt, policy turns and expert replies."""
        return self._transcript

    def prompt_for(self, problem: Problem) -> str:
        """The first observation's text for ``problem`` (never contains the answer)."""
        if len(problem.question) > self.max_prompt_chars:
            raise ValueError(
                f"problem {problem.id!r} has {len(problem.question)} characters; "
                f"raise max_prompt_chars (now {self.max_prompt_chars}) to use it"
            )
        return self.prompt_template.format(instructions=self.instructions, question=problem.question)

    # ---- Gymnasium API --------------------------------------------------------------------

    def hint_steps(self, share: float) -> int:
        """How many reference steps a hint of ``share`` (in [0, 1]) shows for the current problem:
        share x (n - 1) of its n steps, so the last step, which gives the answer, is never shown. A
        fractional count is rounded up with probability equal to its fraction (the episode's own
        random stream, drawn only then), so a short solution's hint shrinks smoothly in expectation:
        with n - 1 = 2 steps, share 0.4 shows one step 80% of the time, where rounding down would
        show none below share 0.5."""
        exact = share * max(len(self.problem.solution_steps) - 1, 0)
        whole = int(exact)
        return whole + int(exact > whole and self.np_random.random() < exact - whole)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. ``options``: ``problem_id`` replays one problem; ``acceptance`` (rho) and
        ``max_turns`` (at most the env's) set this episode's, else the env's defaults hold; ``hint``
        (a share in [0, 1], default 0) puts the first reference steps after the prompt (``hint``)."""
        super().reset(seed=seed)
        options = options or {}
        acceptance = options.get("acceptance", self.acceptance)
        self.acceptance_rate = _share(acceptance, "acceptance", "a probability")
        self.turn_budget = options.get("max_turns", self.max_turns)
        if isinstance(self.turn_budget, bool) or not isinstance(self.turn_budget, int | np.integer):
            raise ValueError(f"max_turns must be an integer, got {self.turn_budget!r}")
        if not 1 <= self.turn_budget <= self.max_turns:
            raise ValueError(f"an episode's max_turns lies in [1, {self.max_turns}], got {self.turn_budget}")
        if "problem_id" in options:
            self.problem = self.problems.get(options["problem_id"])
        else:
            self.problem = self.problems[int(self.np_random.integers(len(self.problems)))]
        share = _share(options.get("hint", 0.0), "hint")
        self.hint = "".join(f"{step}\n" for step in self.problem.solution_steps[: self.hint_steps(share)])
        self._memories = [{} for _ in self.panel.experts]
        self._transcript = self.prompt_for(self.problem) + self.hint
        self._stats = {
            "turns": 0,
            "consults": 0,
            "accepted": 0,
            "rejected": 0,
            "expert_errors": 0,
            "expert_chars": 0,
            "expert_prompt_tokens": 0,
            "expert_completion_tokens": 0,
            "expert_retries": 0,
            "dropped_queries": 0,
        }
        self._failures: list[str] = []
        self._done = False
        if self.action_mode == "token":
            self._ids = self.tokenizer.encode(self._transcript, add_special_tokens=False)
            self._turn_ids: list[int] = []
            self._turn_text = ""
            self._stats["expert_tokens"] = 0
        return self._observation(), self._info()

    def step(self, action):
        pending = self.prepare_step(action)
        if isinstance(pending, tuple):
            return pending
        return self.finish_step(pending, self.panel.round([pending.queries])[0])

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._transcript
        if self.render_mode == "human":
            print(self._transcript)
        return None

    def close(self) -> None:
        self.panel.close()

    # ---- one step in two halves, around a round of expert replies ---------------------------

    def prepare_step(self, action) -> PendingTurn | tuple:
        """Apply ``action`` up to the point where experts must answer.

        Returns the step's result when no expert is needed (a token inside a turn,
        an answer, a turn without queries), else a ``PendingTurn`` whose queries
        go to ``self.panel.round`` (alone, or with other envs' in one round) and
        whose outcomes go to ``finish_step``.
        """
        if self.problem is None or self._done:
            raise RuntimeError("the episode is over or has not started: call reset()")
        if self.action_mode == "token":
            return self._token(action)
        if not isinstance(action, str):
            raise TypeError(f"text-mode actions are strings, got {type(action).__name__}")
        text = _clean_text(action)
        return self._turn(text[: self.max_turn_chars], cut=len(text) > self.max_turn_chars)

    def finish_step(self, pending: PendingTurn, outcomes: Sequence[ExpertOutcome]):
        """Append the replies (or notices) of a consulting turn and return the step's result."""
        replies = []
        answered = iter(outcomes)
        for admitted in pending.admitted:
            if not admitted:
                replies.append(self.protocol.unavailable_notice)
                continue
            outcome = next(answered)
            replies.append(outcome.reply if outcome.reply is not None else self.protocol.failure_notice)
            if outcome.error is not None:
                self._stats["expert_errors"] += 1
                self._failures.append(f"{outcome.expert}: {outcome.error}")
            self._stats["expert_chars"] += len(outcome.reply or "")
            self._stats["expert_prompt_tokens"] += outcome.prompt_tokens
            self._stats["expert_completion_tokens"] += outcome.completion_tokens
            self._stats["expert_retries"] += outcome.retries
        self._stats["consults"] += len(pending.admitted)
        self._stats["accepted"] += int(sum(pending.admitted))
        self._stats["rejected"] += int(len(pending.admitted) - sum(pending.admitted))
        segments = self.protocol.reply_segments(replies)
        if self.action_mode == "token":
            segments = [
                replace(s, token_ids=tuple(self.tokenizer.encode(s.text, add_special_tokens=False)))
                for s in segments
            ]
            feedback_ids = [i for segment in segments for i in segment.token_ids]
            self._ids.extend(feedback_ids)
            self._stats["expert_tokens"] += len(feedback_ids)
        self._transcript += "".join(segment.text for segment in segments)
        if self._stats["turns"] >= self.turn_budget:
            return self._finish(None, truncated=True, segments=segments, cut=pending.cut)
        return self._observation(), 0.0, False, False, self._info(segments, cut=pending.cut)

    def _token(self, action) -> PendingTurn | tuple:
        token = int(action)
        if not 0 <= token < len(self.tokenizer):
            raise ValueError(f"token id {token} outside the vocabulary of {len(self.tokenizer)}")
        self._ids.append(token)
        if token != self.tokenizer.eos_token_id:
            self._turn_ids.append(token)
            self._turn_text += self.tokenizer.decode([token])
            cut = len(self._turn_ids) >= self.max_turn_tokens
            if not cut and not self.protocol.turn_is_complete(self._turn_text):
                return self._observation(), 0.0, False, False, self._info()
        text = self.tokenizer.decode(self._turn_ids)
        cut = len(self._turn_ids) >= self.max_turn_tokens and not self.protocol.turn_is_complete(text)
        self._turn_ids, self._turn_text = [], ""
        return self._turn(text, cut)

    def _turn(self, text: str, cut: bool) -> PendingTurn | tuple:
        """A complete turn: answer, give up, or admit its queries with probability rho."""
        self._stats["turns"] += 1
        self._transcript += text
        parsed = self.protocol.parse(text)
        if parsed.kind != "consult":
            return self._finish(parsed.answer, truncated=False, segments=[], cut=cut)
        self._stats["dropped_queries"] += parsed.dropped_queries
        admitted = self.np_random.random(len(parsed.queries)) < self.acceptance_rate
        asked = [q for q, ok in zip(parsed.queries, admitted, strict=True) if ok]
        return PendingTurn(tuple(self._queries(asked)), tuple(bool(ok) for ok in admitted), cut)

    def ask(
        self, texts: list[str], context: str | None = None, rng: np.random.Generator | None = None
    ) -> list[ExpertOutcome]:
        """Ask the experts outside a turn (teachers, tooling): the same routing, episode memory and
        seeding as a turn, but nothing enters the transcript or the counters."""
        return self.panel.round([self._queries(texts, context, rng)])[0]

    def _queries(
        self, texts: list[str], context: str | None = None, rng: np.random.Generator | None = None
    ) -> list[ExpertQuery]:
        """The admitted queries with what experts may use: query j goes to expert j mod len(experts)."""
        context = self._transcript if context is None else context
        if not texts or not self.panel.experts:
            return [ExpertQuery(text, self.problem, context) for text in texts]
        seeds = (rng or self.np_random).integers(0, 2**63 - 1, size=len(texts))
        return [
            ExpertQuery(
                text=text,
                problem=self.problem,
                context=context,
                memory=self._memories[j % len(self._memories)],
                rng=np.random.default_rng(int(seeds[j])),
            )
            for j, text in enumerate(texts)
        ]

    def _finish(self, answer: str | None, truncated: bool, segments: list[FeedbackSegment], cut: bool):
        """End the episode and pay the reward."""
        well_formed = answer is not None and 0 < len(answer) <= self.max_answer_chars
        correct = well_formed and is_correct(answer, self.problem.answer)
        reward = self.reward_correct if correct else self.reward_format if well_formed else 0.0
        reward -= self.consult_cost * self._stats["consults"]
        self._done = True
        info = self._info(segments, cut)
        info.update(correct=bool(correct), well_formed=bool(well_formed), answer=answer)
        return self._observation(), float(reward), not truncated, truncated, info

    def _observation(self):
        if self.action_mode == "token":
            return np.asarray(self._ids, dtype=np.int64)
        return self._transcript

    def _info(self, segments: Sequence[FeedbackSegment] = (), cut: bool = False) -> dict[str, Any]:
        """Counters so far, and this step's feedback as text and as structured segments."""
        return {
            **self._stats,
            "problem_id": self.problem.id,
            "difficulty": self.problem.difficulty,
            "acceptance_rate": self.acceptance_rate,
            "max_turns": self.turn_budget,
            "hint_chars": len(self.hint),
            "expert_failures": list(self._failures),
            "turn_cut": cut,
            "feedback": "".join(segment.text for segment in segments),
            "feedback_segments": tuple(segments),
        }


@dataclass(frozen=True)
class PendingTurn:
    """A consulting turn waiting for its replies: the admitted queries, and which parsed queries were."""

    queries: tuple[ExpertQuery, ...]
    admitted: tuple[bool, ...]
    cut: bool


def _share(value: Any, name: str, what: str = "a share") -> float:
    """A probability or share as a float in [0, 1]; a ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"{name} is {what} in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


def _clean_text(text: str) -> str:
    """Replace lone surrogates and other unencodable characters so the transcript stays valid text."""
    return text.encode("utf-8", "replace").decode("utf-8")
