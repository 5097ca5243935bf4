"""Prompts through a chat template (system and user messages, then the generation prompt), episodes that
continue inside the assistant turn with expert replies in place and masked, multi-token tags; the plain
prompt unchanged without a template. The tokenizer is a byte-level BPE built here, its template too."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from eapo_agents.engines.trl_generation import VLLMBackend
from eapo_agents.rollout.backend import Samples, SamplingConfig
from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.prompts import prompt_ids
from eapo_agents.training.environments import SHORT_PROMPT
from eapo_gym.env import ExpertMathEnv
from eapo_gym.protocol import TurnProtocol
from eapo_gym.tokenizer import load_tokenizer
from eapo_gym.vector import ExpertMathVectorEnv

SPECIALS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CORPUS = [
    "Solve the problem and give the answer. What is 12 plus 34? The total is 46.",
    "Problem: 25+17=? Let me add the tens and the ones: 25+17=42, so the answer is 42.",
    "ask experts questions, replies arrive, an expert may be unavailable; continue on your own",
] * 20


def subword_tokenizer(chat_template: str | None = TEMPLATE) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few sentences: the protocol tags are several tokens each."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<|pad|>", eos_token="<|end|>", chat_template=chat_template
    )


def env(short: bool = False) -> ExpertMathEnv:
    settings = {"prompt_template": SHORT_PROMPT, "instructions": ""} if short else {}
    environment = ExpertMathEnv(problems="arithmetic", difficulty=1, max_queries=1, **settings)
    environment.reset(seed=3)
    return environment


def test_the_tags_are_several_tokens():
    tokenizer = subword_tokenizer()
    assert all(len(tokenizer.encode(tag, add_special_tokens=False)) > 1 for tag in TurnProtocol().tags)


def test_the_prompt_is_rendered_through_the_chat_template():
    tokenizer, environment = subword_tokenizer(), env()
    text = tokenizer.decode(prompt_ids(tokenizer, environment))
    question = environment.problem.question
    system = f"<|system|>\n{environment.instructions}<|end|>\n"
    assert text == f"{system}<|user|>\nProblem: {question}<|end|>\n<|assistant|>\n"
    short = env(short=True)
    assert tokenizer.decode(prompt_ids(tokenizer, short)) == (
        f"<|user|>\n{short.problem.question}<|end|>\n<|assistant|>\n"
    )


def test_without_a_template_the_plain_prompt_is_unchanged():
    for tokenizer in (load_tokenizer(), subword_tokenizer(chat_template=None)):
        for environment in (env(), env(short=True)):
            assert prompt_ids(tokenizer, environment) == tokenizer.encode(
                environment.transcript, add_special_tokens=False
            )


class ScriptedBackend:
    """Writes the given turns, one per call, for every row."""

    max_new_tokens = 64

    def __init__(self, tokenizer, turns: list[str]) -> None:
        self.turns = [tokenizer.encode(text, add_special_tokens=False) for text in turns]

    def generate(self, contexts, keys, lock_queries=False) -> Samples:
        tokens = self.turns.pop(0)
        return Samples(
            [tokens] * len(contexts), [[0.0] * len(tokens)] * len(contexts), [True] * len(contexts)
        )


def test_the_episode_continues_inside_the_assistant_turn_with_replies_in_place():
    tokenizer = subword_tokenizer()
    envs = ExpertMathVectorEnv(
        1, problems="arithmetic", difficulty=1, max_queries=1, prompt_template=SHORT_PROMPT, instructions=""
    )
    envs.reset(seed=[3])
    problem = envs.envs[0].problem
    asking, answering = "Let me ask. <expert>first step?</expert>", f"<answer>{problem.answer}</answer>"
    (episode,) = play_episodes(
        ScriptedBackend(tokenizer, [asking, answering]), tokenizer, envs, [3], [problem.id]
    )
    reply = f"\n<reply>{problem.solution_steps[0]}</reply>\n"
    assert tokenizer.decode(episode.context) == (
        f"<|user|>\n{problem.question}<|end|>\n<|assistant|>\n{asking}{reply}{answering}"
    )
    masked = [t for t, m in zip(episode.completion_ids, episode.mask, strict=True) if m == 0]
    unmasked = [t for t, m in zip(episode.completion_ids, episode.mask, strict=True) if m == 1]
    assert tokenizer.decode(masked) == reply and tokenizer.decode(unmasked) == asking + answering
    assert episode.reward == 1.0


class ScriptedVLLM:
    """TRL's ``VLLMGeneration.generate``, scripted: returns the given rows, one list per call."""

    def __init__(self, script: list[list[list[int]]]) -> None:
        self.script, self.prompts = script, []

    def generate(self, prompts, images, num_generations):
        self.prompts.append(prompts)
        ids = self.script.pop(0)
        return prompts, ids, [[[0.0] for _ in row] for row in ids], None


def test_the_vllm_backend_continues_past_a_multi_token_tags_last_piece():
    """The closing tag's last token (">") also ends other text and the opening tag, so generation stops
    there; each such row is continued, and the turn ends only when the text completes the tag (K = 1)."""
    tokenizer = subword_tokenizer()
    stop = tokenizer.encode("</expert>", add_special_tokens=False)[-1]
    ids = tokenizer.encode("is 3 > 2? <expert>sure?</expert> more", add_special_tokens=False)
    ends = [i + 1 for i, token in enumerate(ids) if token == stop]
    assert len(ends) == 3  # "3 >", "<expert>", "</expert>"
    pieces = [ids[: ends[0]], ids[ends[0] : ends[1]], ids[ends[1] :]]
    vllm = ScriptedVLLM([[piece] for piece in pieces])
    context = tokenizer.encode("q", add_special_tokens=False)
    single = type("Single", (), {"num_processes": 1, "device": torch.device("cpu")})()
    backend = VLLMBackend(vllm, single, tokenizer, TurnProtocol(max_queries=1), SamplingConfig(48), False)
    samples = backend.generate([context], [0])
    assert vllm.prompts == [[context], [context + pieces[0]], [context + pieces[0] + pieces[1]]]
    assert tokenizer.decode(samples.tokens[0]) == "is 3 > 2? <expert>sure?</expert>"
    assert samples.stopped == [True]
