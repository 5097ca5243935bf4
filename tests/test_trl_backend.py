"""The TRL engine's vLLM backend: its turn rule and its lockstep across processes, on a scripted
``VLLMGeneration`` (vLLM itself needs CUDA)."""

from __future__ import annotations

import torch

from eapo_agents.engines.trl_generation import VLLMBackend
from eapo_agents.rollout.backend import SamplingConfig
from eapo_agents.rollout.continuation import stop_ids
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


class ScriptedVLLM:
    """``VLLMGeneration.generate`` returning scripted rows (one list per call, with one log-probability
    per token) and recording its prompts."""

    def __init__(self, script: list[list[list[int]]]) -> None:
        self.script, self.prompts = list(script), []

    def generate(self, prompts, images, num_generations):
        assert images is None and num_generations == 1
        self.prompts.append(prompts)
        rows = self.script.pop(0)
        ids = [rows[i] if i < len(rows) else [EOS] for i in range(len(prompts))]
        return prompts, ids, [[[-0.5] for _ in row] for row in ids], None


def backend(
    vllm: ScriptedVLLM, max_new_tokens: int = 48, max_queries: int = 3, accelerator=None
) -> VLLMBackend:
    protocol = TurnProtocol(max_queries=max_queries)
    sampling = SamplingConfig(max_new_tokens)
    return VLLMBackend(vllm, accelerator or ScriptedAccelerator(), TOKENIZER, protocol, sampling, False)


def test_the_stops_are_the_closing_tags():
    assert stop_ids(TOKENIZER, TurnProtocol()) == sorted(ids("</expert>") + ids("</answer>"))


def test_a_row_stopped_at_a_query_is_continued_until_its_turn_ends():
    """K = 3: generation stops at each </expert>; the turn goes on until EOS, each call continuing
    from the context plus the turn so far."""
    context = ids("2+2=?\n")
    first, second = ids("<expert>a</expert>"), ids("<expert>b</expert>")
    vllm = ScriptedVLLM([[first + [PAD, PAD]], [second + [PAD]], [[EOS, PAD]]])
    samples = backend(vllm).generate([context], keys=[0])
    assert samples.tokens == [first + second + [EOS]] and samples.stopped == [True]
    assert vllm.prompts == [[context], [context + first], [context + first + second]]
    assert samples.logprobs == [[-0.5] * len(samples.tokens[0])]  # vLLM's, the sampled token's


def test_the_kth_query_and_an_answer_end_the_turn():
    """K = 2: the second </expert> ends the turn, as </answer> does; what follows is dropped."""
    query = ids("<expert>a</expert>")
    answer = ids("x <answer>4</answer>")
    vllm = ScriptedVLLM([[query, answer + ids("more")], [query + ids("junk")]])
    samples = backend(vllm, max_queries=2).generate([ids("q\n"), ids("r\n")], keys=[0, 1])
    assert samples.tokens == [query * 2, answer] and samples.stopped == [True, True]
    assert [len(prompts) for prompts in vllm.prompts] == [2, 1]


def test_max_new_tokens_cuts_a_turn_that_did_not_end():
    vllm = ScriptedVLLM([[ids("1234567890")]])
    samples = backend(vllm, max_new_tokens=4).generate([ids("q\n")], keys=[0])
    assert samples.tokens == [ids("1234")] and samples.stopped == [False]


def test_processes_stay_in_lockstep():
    """With two processes every call is padded to the larger batch, and a process whose episodes are
    over keeps joining the other's calls with filler rows until both report none."""
    vllm = ScriptedVLLM([[ids("<answer>1</answer>")] * 2, [[EOS]]])
    accelerator = ScriptedAccelerator([3, 1, 0])
    turn = backend(vllm, accelerator=accelerator)
    samples = turn.generate([ids("a\n"), ids("b\n")], keys=[0, 1])
    assert samples.tokens == [ids("<answer>1</answer>")] * 2
    turn.finish()
    assert [len(prompts) for prompts in vllm.prompts] == [3, 1]
    assert vllm.prompts[0][2] == vllm.prompts[1][0] == [EOS]  # filler rows
    assert accelerator.other_sizes == []
