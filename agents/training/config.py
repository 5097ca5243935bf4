"""Training configuration: the settings every agent shares, plus the algorithm's own options.

Each agent class declares its options as a dataclass, ``Agent.Options`` (e.g.
``GRPOOptions`` in ``eapo_agents.algorithms.grpo``); ``TrainConfig.options`` holds
an instance of it. Every field, shared or the algorithm's, is a ``--flag`` of
``eapo-gym train`` (underscores become dashes) with one line of help, and a key of
a YAML ``--config`` file; precedence is defaults < YAML < flags. A run's
``config.json`` holds the same flat keys, so it is itself a valid ``--config``.

The rules of a value live on its field (``option``): its type (taken from the
default), its range and its choices. Both dataclasses check them at construction,
whatever the source (flags, YAML, config.json, Python), and raise ``SettingError``.
Text the way YAML gives it is converted: ``lr: 1e-4`` (a string to PyYAML) is the
float 1e-4, ``short_prompt: "false"`` is False, ``train_difficulties: 2,3`` is (2, 3);
``steps: 2.7`` or ``lr: [1, 2]`` is an error.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from eapo_gym.schedules import parse_schedule

from ..rollout.backend import backend_names
from .registry import agent_class, agent_names, built_in

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


class SettingError(ValueError):
    """A setting that cannot be used: ``key`` names it (a field: a flag and a YAML key), ``reason`` says
    what is allowed; ``value`` is shown after the key when the reason does not show it."""

    def __init__(self, key: str, reason: str, value: Any = None) -> None:
        super().__init__(f"{key}{'' if value is None else f' {value}'}: {reason}")
        self.key, self.reason, self.value = key, reason, value


def option(
    default: Any,
    help: str,
    choices: Sequence[Any] | None = None,
    group: str = "",
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
) -> Any:
    """A dataclass field with its one-line ``--help`` text and its rules: allowed values (``choices``),
    and bounds (``at_least`` <= value, ``above`` < value, value <= ``at_most``; each number of a tuple)."""
    bounds = (at_least, above, at_most)
    metadata = {"help": help, "choices": tuple(choices or ()), "group": group, "bounds": bounds}
    return field(default=default, metadata=metadata)


def check_fields(settings: Any) -> None:
    """Convert each ``option`` field of a dataclass instance to its default's type and check its rules;
    ``SettingError`` for the first that breaks one."""
    for spec in dataclasses.fields(settings):
        if "help" in spec.metadata:
            object.__setattr__(settings, spec.name, checked_value(spec, getattr(settings, spec.name)))


def check_schedules(settings: Any, *names: str) -> None:
    """``SettingError`` for the first of the fields ``names`` that is not a schedule (``parse_schedule``)."""
    for name in names:
        try:
            parse_schedule(getattr(settings, name), length=1)
        except ValueError as error:
            raise SettingError(name, str(error)) from None


def checked_value(spec: dataclasses.Field, value: Any) -> Any:
    """``value`` converted to the type of ``spec``'s default, within its bounds and choices."""
    kind, choices = type(spec.default), spec.metadata.get("choices")
    allowed = _described(kind, spec.metadata.get("bounds", (None, None, None)))
    converted = _converted(kind, value)
    numbers = converted if isinstance(converted, tuple) else (converted,)
    if converted is None or not all(_within(number, spec.metadata.get("bounds")) for number in numbers):
        raise SettingError(spec.name, f"expected {allowed}, got {value!r}")
    if choices and converted not in choices:
        raise SettingError(spec.name, f"expected one of {', '.join(map(str, choices))}, got {value!r}")
    return converted


def _converted(kind: type, value: Any) -> Any:
    """``value`` as ``kind`` (bool, int, float, str or a tuple of ints), or None if it is not one."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in TRUE else False if text in FALSE else None
    if kind is tuple:
        parts = value.split(",") if isinstance(value, str) else value
        parts = parts if isinstance(parts, list | tuple) else [parts]
        numbers = tuple(_converted(int, part) for part in parts if str(part).strip())
        return None if None in numbers else numbers
    if kind is str:
        return value if isinstance(value, str) else None
    if kind not in (int, float):  # a plugin's own type, or a default of None: as given
        return value
    if isinstance(value, bool):
        return None
    if kind is int and isinstance(value, int | str) and str(value).strip().lstrip("+-").isdigit():
        return int(value)
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        return None
    if not math.isfinite(number) or (kind is int and not number.is_integer()):
        return None
    return kind(number)


def _within(number: Any, bounds: tuple | None) -> bool:
    at_least, above, at_most = bounds or (None, None, None)
    return not (
        (at_least is not None and number < at_least)
        or (above is not None and number <= above)
        or (at_most is not None and number > at_most)
    )


def _described(kind: type, bounds: tuple) -> str:
    """What a field allows, e.g. ``an integer >= 1`` or ``a float > 0 and <= 1``."""
    names = {bool: "true or false", int: "an integer", float: "a float", str: "a string"}
    name = names.get(kind, "comma-separated integers" if kind is tuple else kind.__name__)
    at_least, above, at_most = bounds
    limits = [f"{sign} {limit:g}" for sign, limit in ((">=", at_least), (">", above), ("<=", at_most))
              if limit is not None]  # fmt: skip
    return " and ".join([f"{name} {limits[0]}", *limits[1:]]) if limits else name


class Options:
    """Base of the algorithms' options dataclasses: their fields are checked at construction."""

    def __post_init__(self) -> None:
        check_fields(self)

    def check_config(self, config: TrainConfig) -> None:
        """Raise ``SettingError`` if a shared setting does not suit this algorithm (none by default)."""


@dataclass
class NoOptions(Options):
    """An agent without options of its own."""


@dataclass
class ScheduledOptions(Options):
    """Options of an algorithm whose schedules run over the training (EAPO's rho, annealed hints)."""

    schedule_steps: int = option(
        0, "updates over which linear and cosine schedules run; 0: --steps at the run's first start"
    )

    def schedule_length(self, config: TrainConfig) -> int:
        return self.schedule_steps or config.steps


_run = partial(option, group="run")
_problems = partial(option, group="problems")
_rollouts = partial(option, group="rollouts")
_optimisation = partial(option, group="optimisation")
_environment = partial(option, group="environment (experts during training and evaluation)")
_evaluation = partial(option, group="evaluation and logging")


@dataclass
class TrainConfig:
    algo: str = _run("grpo", f"the algorithm: {', '.join(sorted(built_in()))} or a registered agent")
    preset: str = _run(
        "tiny",
        "starting model when --model is empty: tiny (shipped) or small (GPU-sized; see eapo-gym warm-start)",
    )
    model: str = _run("", "local model directory to start from (from_pretrained, offline)")
    steps: int = _run(60, "policy updates", at_least=1)
    seed: int = _run(0, "seed of problems, samples and initialisation", at_least=0)
    out: str = _run("runs/latest", "run directory: metrics.jsonl, tensorboard/, checkpoint/, eval.json")
    resume: bool = _run(False, "continue the run in --out from its checkpoint, with its config.json")
    overwrite: bool = _run(False, "delete the run in --out, if it holds one, and start afresh")
    device: str = _run("auto", "auto, cpu, cuda or cuda:N")
    dtype: str = _run(
        "auto",
        "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float16 or float32",
        ("auto", "bfloat16", "float16", "float32"),
    )
    hub_kernels: bool = _run(
        False, "download and run transformers' kernels from the Hugging Face Hub (kernels-community/rotary)"
    )
    lora_rank: int = _run(0, "> 0: train a peft LoRA adapter of this rank instead of all weights", at_least=0)
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
    train_difficulties: tuple[int, ...] = _problems(
        (3,), "levels trained on, comma-separated; empty: all", at_least=1
    )
    eval_difficulties: tuple[int, ...] = _problems(
        (3, 4), "levels evaluated on (test split), comma-separated", at_least=1
    )

    problems_per_step: int = _rollouts(8, "problems per update", at_least=1)
    group_size: int = _rollouts(
        8, "episodes per problem (GRPO/EAPO groups, at least 2); PPO uses the same batch", at_least=1
    )
    max_new_tokens: int = _rollouts(48, "most tokens per policy turn", at_least=1)
    max_context: int = _rollouts(384, "most tokens per episode: prompt, turns and replies", at_least=1)
    temperature: float = _rollouts(
        1.0, "sampling temperature; 0 (greedy) only where nothing trains on log-probs", at_least=0
    )
    top_p: float = _rollouts(1.0, "nucleus sampling mass", above=0, at_most=1)
    short_prompt: bool = _rollouts(
        True, "the problem alone as prompt (tiny models); false: with the protocol"
    )
    rollout_backend: str = _rollouts(
        "local", f"what generates policy turns: {', '.join(backend_names())} or a registered backend"
    )

    lr: float = _optimisation(2e-4, "AdamW learning rate", above=0)
    grad_clip: float = _optimisation(1.0, "gradient norm clip", above=0)
    micro_batch_size: int = _optimisation(0, "most sequences per forward/backward (0: no limit)", at_least=0)
    micro_batch_tokens: int = _optimisation(
        2048, "most padded tokens per forward/backward (0: no limit)", at_least=0
    )

    experts: str = _environment(
        "reference",
        "comma-separated: reference, reference-successive, symbolic, model:DIR, openai:M@URL, ...",
    )
    expert_noise: float = _environment(
        0.0, "reference expert: probability that a reply is corrupted", at_least=0, at_most=1
    )
    max_queries: int = _environment(3, "K, the most expert queries per turn", at_least=1)
    parallel_experts: bool = _environment(True, "send a turn's queries at once (false: one after another)")
    consult_cost: float = _environment(0.0, "reward subtracted per query")
    expert_failure_share: float = _environment(
        0.5, "a line per update where more than this share of the expert calls failed", at_least=0, at_most=1
    )
    expert_failure_stop: int = _environment(
        3, "stop if every expert call failed in each of the first N updates with calls (0: go on)", at_least=0
    )
    expert_timeout: float = _environment(
        60.0, "seconds a turn's round of queries may take (keep servers' below)", above=0
    )
    max_turns: int = _environment(
        10, "turn budget per episode (EAPO's --turn-schedule shrinks it in training)", at_least=1
    )
    final_turns: int = _environment(
        1, "the turn budget a turn schedule ends at: evaluation's, locked (1 turn)", at_least=1
    )

    eval_every: int = _evaluation(20, "updates between held-out evaluations", at_least=1)
    eval_problems: int = _evaluation(64, "test problems per evaluated level", at_least=1)
    curve_eval_problems: int = _evaluation(
        0,
        "test problems per level in the evaluations before the last (the curves); the last takes "
        "--eval-problems; 0: --eval-problems",
        at_least=0,
    )
    eval_k: int = _evaluation(4, "samples per test problem", at_least=1)
    eval_split: str = _evaluation(
        "test", "the split evaluated: test (held out) or train (validation)", ("test", "train")
    )
    eval_consult: str = _evaluation(
        "locked",
        "without experts: locked (the query tag cannot be written) or declined",
        ("locked", "declined"),
    )
    save_every: int = _evaluation(20, "updates between checkpoints", at_least=1)
    tensorboard: bool = _evaluation(True, "also write TensorBoard events")

    options: Any = None  # the algorithm's Options instance; None: its defaults

    def __post_init__(self) -> None:
        check_fields(self)
        if not DEVICE.fullmatch(self.device):
            raise SettingError("device", f"expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        check_device(self.device, self.dtype)
        if self.rollout_backend not in backend_names():
            choices = ", ".join(backend_names())
            raise SettingError("rollout_backend", f"expected one of {choices}, got {self.rollout_backend!r}")
        if self.final_turns > self.max_turns:
            reason = f"expected at most --max-turns ({self.max_turns}), got {self.final_turns}"
            raise SettingError("final_turns", reason)
        options_type = options_of(self.algo)
        if self.options is None:
            self.options = options_type()
        elif not isinstance(self.options, options_type):
            raise TypeError(
                f"options of {self.algo} are {options_type.__name__}, got {type(self.options).__name__}"
            )
        check_fields(self.options)  # a plugin's options need not derive from Options
        if isinstance(self.options, Options):
            self.options.check_config(self)

    def to_dict(self) -> dict[str, Any]:
        """The shared fields and the algorithm's options as one flat dict (what config.json holds)."""
        shared = {spec.name: getattr(self, spec.name) for spec in shared_fields()}
        return {**shared, **dataclasses.asdict(self.options)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from flat keys: the shared fields and those of ``values["algo"]``'s options.

        An unknown key, or one that belongs to another algorithm, is a ``SettingError`` that says so.
        """
        algo = values.get("algo", cls.algo)
        options_type = options_of(algo)
        shared_names = {spec.name for spec in shared_fields()}
        option_names = {spec.name for spec in dataclasses.fields(options_type)}
        unknown = sorted(set(values) - shared_names - option_names)
        if unknown:
            raise SettingError(", ".join(unknown), _not_an_option_of(unknown, algo))
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


def check_device(device: str, dtype: str) -> None:
    """``SettingError`` unless this machine has ``device`` (``auto``: CUDA if there is one, else the CPU)
    and can compute in ``dtype`` there (``auto``: bfloat16 on CUDA): checked with the settings, before
    anything loads or is written."""
    import torch

    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not on_cuda:
        return
    if not torch.cuda.is_available():
        built = "is built without CUDA" if torch.version.cuda is None else "sees no CUDA device"
        raise SettingError("device", f"this machine's torch {built}; use --device cpu or auto", device)
    count = torch.cuda.device_count()
    if int(device.partition(":")[2] or 0) >= count:
        raise SettingError(
            "device", f"this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}", device
        )
    if dtype in ("auto", "bfloat16") and not torch.cuda.is_bf16_supported():
        reason = "(auto: bfloat16 on CUDA) " if dtype == "auto" else ""
        raise SettingError(
            "dtype", f"{reason}this GPU cannot compute in bfloat16; use float16 or float32", dtype
        )


def options_of(algo: str) -> type:
    """The options dataclass of ``algo``; a ``SettingError`` naming the algorithms otherwise."""
    try:
        return agent_class(algo).Options
    except ValueError as error:
        raise SettingError("algo", str(error)) from None


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
