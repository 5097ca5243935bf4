"""The TRL generation backend's turn rule and its lockstep across processes, on a scripted trainer."""

from __future__ import annotations

import torch

from eapo_agents.engines.trl_generation import TrainerBackend, stop_ids
from eapo_gym.protocol import TurnProtocol
from eapo_gym.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer()
EOS, PAD = TOKENIZER.eos_token_id, TOKENIZER.pad_token_id


def ids(text: str) -> list[int]:
    return TOKENIZER.encode(text, add_special_tokens=False)


class ScriptedAccelerator:
    """``gather`` of a one-element tensor: this process's value, then the other process's next one."""

    device = torch.device("cpu")

    def __init__(self, other_sizes: list[int] | None = None) -> None:
        self.other_sizes = other_sizes
        self.num_processes = 1 if other_sizes is None else 2

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.tensor([int(tensor[0]), self.other_sizes.pop(0)])


class ScriptedTrainer:
    """``_generate_single_turn`` returning scripted rows (one list per call) and recording its prompts."""

    eos_token_ids = [EOS]
    use_vllm = False

    def __init__(self, script: list[list[list[int]]], accelerator=None) -> None:
        self.script, self.prompts = list(script), []
        self.accelerator = accelerator or ScriptedAccelerator()

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations):
        assert images is None and num_generations == 1
        self.prompts.append(prompt_ids)
        rows = self.script.pop(0)
        return [rows[i] if i < len(rows) else [EOS] for i in range(len(prompt_ids))], None


def backend(trainer: ScriptedTrainer, max_new_tokens: int = 48, max_queries: int = 3) -> TrainerBackend:
    return TrainerBackend(trainer, TOKENIZER, TurnProtocol(max_queries=max_queries), max_new_tokens)


def test_the_stops_are_the_closing_tags():
    assert stop_ids(TOKENIZER, TurnProtocol()) == sorted(ids("</expert>") + ids("</answer>"))


def test_a_row_stopped_at_a_query_is_continued_until_its_turn_ends():
    """K = 3: generation stops at each </expert>; the turn goes on until EOS, each call continuing
    from the context plus the turn so far."""
    context = ids("2+2=?\n")
    first, second = ids("<expert>a</expert>"), ids("<expert>b</expert>")
    trainer = ScriptedTrainer([[first + [PAD, PAD]], [second + [PAD]], [[EOS, PAD]]])
    samples = backend(trainer).generate([context], keys=[0])
    assert samples.tokens == [first + second + [EOS]] and samples.stopped == [True]
    assert trainer.prompts == [[context], [context + first], [context + first + second]]
    assert all(len(row) == len(tokens) for row, tokens in zip(samples.logprobs, samples.tokens, strict=True))


def test_the_kth_query_and_an_answer_end_the_turn():
    """K = 2: the second </expert> ends the turn, as </answer> does; what follows is dropped."""
    query = ids("<expert>a</expert>")
    answer = ids("x <answer>4</answer>")
    trainer = ScriptedTrainer([[query, answer + ids("more")], [query + ids("junk")]])
    samples = backend(trainer, max_queries=2).generate([ids("q\n"), ids("r\n")], keys=[0, 1])
    assert samples.tokens == [query * 2, answer] and samples.stopped == [True, True]
    assert [len(prompts) for prompts in trainer.prompts] == [2, 1]


def test_max_new_tokens_cuts_a_turn_that_did_not_end():
    trainer = ScriptedTrainer([[ids("1234567890")]])
    samples = backend(trainer, max_new_tokens=4).generate([ids("q\n")], keys=[0])
    assert samples.tokens == [ids("1234")] and samples.stopped == [False]


def test_processes_stay_in_lockstep():
    """With two processes every call is padded to the larger batch, and a process whose episodes are
    over keeps joining the other's calls with filler rows until both report none."""
    trainer = ScriptedTrainer([[ids("<answer>1</answer>")] * 2, [[EOS]]], ScriptedAccelerator([3, 1, 0]))
    turn = backend(trainer)
    samples = turn.generate([ids("a\n"), ids("b\n")], keys=[0, 1])
    assert samples.tokens == [ids("<answer>1</answer>")] * 2
    turn.finish()
    assert [len(prompts) for prompts in trainer.prompts] == [3, 1]
    assert trainer.prompts[0][2] == trainer.prompts[1][0] == [EOS]  # filler rows
    assert trainer.accelerator.other_sizes == []


def test_the_private_trl_method_called_takes_the_arguments_given():
    """``TrainerBackend`` calls ``GRPOTrainer._generate_single_turn(prompts, None, {}, 1)``: private,
    so pyproject pins TRL to the release line it was tested with; this fails first if that drifts."""
    import inspect

    from trl import GRPOTrainer

    names = list(inspect.signature(GRPOTrainer._generate_single_turn).parameters)
    assert names[1:5] == ["prompt_ids", "images", "multimodal_fields", "num_generations"]
