"""Training configuration: the settings every agent shares, plus the algorithm's own options.

Each agent class declares its options as a dataclass, ``Agent.Options`` (e.g.
``GRPOOptions`` in ``eapo_agents.algorithms.grpo``); ``TrainConfig.options`` holds
an instance of it. Every field, shared or the algorithm's, is a ``--flag`` of
``eapo-gym train`` (underscores become dashes) with one line of help, and a key of
a YAML ``--config`` file; precedence is defaults < YAML < flags. A run's
``config.json`` holds the same flat keys, so it is itself a valid ``--config``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from eapo_agents.training.registry import agent_class, agent_names


def option(default: Any, help: str, choices: Sequence[Any] | None = None, group: str = "") -> Any:
    """A dataclass field with its one-line ``--help`` text and, optionally, its allowed values."""
    return field(default=default, metadata={"help": help, "choices": tuple(choices or ()), "group": group})


def check_choices(settings: Any) -> None:
    """Raise ``ValueError`` naming the allowed values for any field outside its ``choices``."""
    for spec in dataclasses.fields(settings):
        allowed, value = spec.metadata.get("choices"), getattr(settings, spec.name)
        if allowed and value not in allowed:
            raise ValueError(f"{spec.name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


@dataclass
class NoOptions:
    """An agent without options of its own."""


_run = partial(option, group="run")
_problems = partial(option, group="problems")
_rollouts = partial(option, group="rollouts")
_optimisation = partial(option, group="optimisation")
_environment = partial(option, group="environment (experts during training and evaluation)")
_evaluation = partial(option, group="evaluation and logging")


@dataclass
class TrainConfig:
    algo: str = _run(
        "grpo", "the algorithm: grpo, ppo, eapo, sft, distill, base, workflow or a registered agent"
    )
    preset: str = _run(
        "tiny",
        "starting model when --model is empty: tiny (shipped) or small (GPU-sized; see eapo-gym warm-start)",
    )
    model: str = _run("", "local model directory to start from (from_pretrained, offline)")
    steps: int = _run(60, "policy updates")
    seed: int = _run(0, "seed of problems, samples and initialisation")
    out: str = _run("runs/latest", "run directory: metrics.jsonl, tensorboard/, checkpoint/, eval.json")
    resume: bool = _run(False, "continue the run in --out from its checkpoint, with its config.json")
    device: str = _run("auto", "auto, cpu, cuda or cuda:N")
    dtype: str = _run("auto", "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float16 or float32")
    hub_kernels: bool = _run(
        False, "download and run transformers' kernels from the Hugging Face Hub (kernels-community/rotary)"
    )
    lora_rank: int = _run(0, "> 0: train a peft LoRA adapter of this rank instead of all weights")
    engine: str = _run(
        "native", "native (our loop) or trl (TRL's GRPOTrainer; grpo and eapo)", ("native", "trl")
    )
    vllm: str = _run(
        "off", "--engine trl: generate with TRL's vLLM, colocate or server", ("off", "colocate", "server")
    )
    vllm_server_url: str = _run("", "--vllm server: the server's base URL, e.g. http://host:8000")
    trl_args: str = _run("", "--engine trl: YAML file of further GRPOConfig fields (they win)")

    problems: str = _problems(
        "arithmetic", "problem source: a generator name, champ, reasoning_gym:NAME or a file"
    )
    train_difficulties: tuple[int, ...] = _problems((3,), "levels trained on, comma-separated; empty: all")
    eval_difficulties: tuple[int, ...] = _problems(
        (3, 4), "levels evaluated on (test split), comma-separated"
    )

    problems_per_step: int = _rollouts(8, "problems per update")
    group_size: int = _rollouts(8, "episodes per problem (GRPO/EAPO groups); PPO uses the same batch")
    max_new_tokens: int = _rollouts(48, "most tokens per policy turn")
    max_context: int = _rollouts(384, "most tokens per episode: prompt, turns and replies")
    temperature: float = _rollouts(1.0, "sampling temperature (0: greedy)")
    top_p: float = _rollouts(1.0, "nucleus sampling mass")
    short_prompt: bool = _rollouts(
        True, "the problem alone as prompt (tiny models); false: with the protocol"
    )

    lr: float = _optimisation(2e-4, "AdamW learning rate")
    grad_clip: float = _optimisation(1.0, "gradient norm clip")
    micro_batch_size: int = _optimisation(0, "most sequences per forward/backward (0: no limit)")
    micro_batch_tokens: int = _optimisation(2048, "most padded tokens per forward/backward (0: no limit)")

    experts: str = _environment(
        "reference",
        "comma-separated: reference, reference-successive, symbolic, model:DIR, openai:M@URL, ...",
    )
    expert_noise: float = _environment(0.0, "reference expert: probability that a reply is corrupted")
    max_queries: int = _environment(3, "K, the most expert queries per turn")
    parallel_experts: bool = _environment(True, "send a turn's queries at once (false: one after another)")
    consult_cost: float = _environment(0.0, "reward subtracted per query")
    expert_timeout: float = _environment(
        60.0, "seconds a turn's round of queries may take (keep servers' below)"
    )
    max_turns: int = _environment(
        10, "turn budget per episode (EAPO's --turn-schedule shrinks it in training)"
    )
    final_turns: int = _environment(
        1, "the turn budget a turn schedule ends at: evaluation's, locked (1 turn)"
    )

    eval_every: int = _evaluation(20, "updates between held-out evaluations")
    eval_problems: int = _evaluation(64, "test problems per evaluated level")
    eval_k: int = _evaluation(4, "samples per test problem")
    eval_split: str = _evaluation(
        "test", "the split evaluated: test (held out) or train (validation)", ("test", "train")
    )
    eval_consult: str = _evaluation(
        "locked",
        "without experts: locked (the query tag cannot be written) or declined",
        ("locked", "declined"),
    )
    save_every: int = _evaluation(20, "updates between checkpoints")
    tensorboard: bool = _evaluation(True, "also write TensorBoard events")

    options: Any = None  # the algorithm's Options instance; None: its defaults

    def __post_init__(self) -> None:
        self.train_difficulties = tuple(self.train_difficulties)
        self.eval_difficulties = tuple(self.eval_difficulties)
        check_choices(self)
        options_type = agent_class(self.algo).Options
        if self.options is None:
            self.options = options_type()
        elif not isinstance(self.options, options_type):
            raise TypeError(
                f"options of {self.algo} are {options_type.__name__}, got {type(self.options).__name__}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The shared fields and the algorithm's options as one flat dict (what config.json holds)."""
        shared = {spec.name: getattr(self, spec.name) for spec in shared_fields()}
        return {**shared, **dataclasses.asdict(self.options)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from flat keys: the shared fields and those of ``values["algo"]``'s options.

        An unknown key, or one that belongs to another algorithm, is a ``ValueError`` that says so.
        """
        algo = values.get("algo", cls.algo)
        options_type = agent_class(algo).Options
        shared_names = {spec.name for spec in shared_fields()}
        option_names = {spec.name for spec in dataclasses.fields(options_type)}
        unknown = sorted(set(values) - shared_names - option_names)
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: {_not_an_option_of(unknown, algo)}")
        shared = {name: value for name, value in values.items() if name in shared_names}
        options = options_type(**{name: value for name, value in values.items() if name in option_names})
        return cls(**shared, options=options)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` to shared fields or options; a new ``algo`` keeps the options it shares."""
        current = self.to_dict()
        if changes.get("algo", self.algo) != self.algo:
            names = {spec.name for spec in dataclasses.fields(agent_class(changes["algo"]).Options)}
            shared = {spec.name for spec in shared_fields()}
            current = {name: value for name, value in current.items() if name in names | shared}
        return TrainConfig.from_dict({**current, **changes})


def shared_fields() -> list[dataclasses.Field]:
    return [spec for spec in dataclasses.fields(TrainConfig) if spec.name != "options"]


def _not_an_option_of(names: list[str], algo: str) -> str:
    owners = {
        other: {spec.name for spec in dataclasses.fields(agent_class(other).Options)} & set(names)
        for other in agent_names()
    }
    elsewhere = sorted(other for other, found in owners.items() if found)
    if elsewhere:
        return f"not an option of {algo} (options of {', '.join(elsewhere)})"
    return "unknown setting; see eapo-gym train --help"
