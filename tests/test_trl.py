"""EAPO through TRL's GRPOTrainer (``--engine trl``): updates, the env mask TRL trains on, rho per update
(with several passes too), expert replies in the completions, and the same rewards as our trainer's
rollouts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
import torch

from eapo_agents.algorithms.eapo import EAPOAgent
from eapo_agents.algorithms.grpo import GRPOAgent
from eapo_agents.cli import main
from eapo_agents.engines import trl_train
from eapo_agents.rollout.backend import Samples
from eapo_agents.rollout.play import play_episodes
from eapo_agents.rollout.sampling import LocalBackend
from eapo_agents.training.agent import rollout_metrics
from eapo_agents.training.config import TrainConfig
from eapo_gym.protocol import TurnProtocol

PROTOCOL = TurnProtocol()
REPLY_BLOCK = re.compile(r"\n<reply>(.*?)</reply>", re.DOTALL)


def on_trl(config: TrainConfig, **changes) -> TrainConfig:
    """``config`` on the TRL engine, which saves the model at the end only (``save_every`` its default)."""
    return config.replace(engine="trl", save_every=TrainConfig.save_every, **changes)


@dataclass
class Recorded:
    """What one TRL run handed around: per rollout call, its outputs, episodes and backend turns; per
    loss computation, each row's completion ids and the loss mask TRL built from ``env_mask``; the
    rewards TRL received."""

    outputs: list[dict] = field(default_factory=list)
    episodes: list[list] = field(default_factory=list)
    turns: list[dict[int, list[list[int]]]] = field(default_factory=list)  # per call: env index -> turns
    trained: list[list[tuple[list[int], list[float]]]] = field(default_factory=list)  # (ids, mask) rows
    rewards: list[float] = field(default_factory=list)
    in_rollout: bool = False


def recorded_run(config, monkeypatch) -> tuple[trl_train.TRLRun, Recorded]:
    """Build a TRL run that records every rollout, every generated turn, the rows TRL's loss is computed
    on and the rewards it receives (through public names only)."""
    record = Recorded()
    generate = LocalBackend.generate

    def recording_generate(self, contexts, keys, lock_queries=False):
        samples = generate(self, contexts, keys, lock_queries)
        for key, tokens in zip(keys, samples.tokens, strict=True):
            if record.in_rollout:  # not the evaluation's
                record.turns[-1].setdefault(key, []).append(tokens)
        return samples

    monkeypatch.setattr(LocalBackend, "generate", recording_generate)
    run = trl_train.build(config, progress=False)
    rollout = run.trainer.rollout_func

    def recording_rollout(prompts, trainer):
        record.turns.append({})
        record.in_rollout = True
        output = rollout(prompts, trainer)
        record.in_rollout = False
        record.outputs.append(output)
        record.episodes.append(list(rollout.episodes))
        return output

    run.trainer.rollout_func = recording_rollout
    compute_loss = run.trainer.compute_loss

    def recording_loss(model, inputs, *args, **kwargs):
        mask = inputs["tool_mask"] * inputs["completion_mask"]
        record.trained.append(list(zip(inputs["completion_ids"].tolist(), mask.tolist(), strict=True)))
        return compute_loss(model, inputs, *args, **kwargs)

    monkeypatch.setattr(run.trainer, "compute_loss", recording_loss)
    (reward,) = run.trainer.reward_funcs

    def recording_reward(*args, **kwargs):
        values = reward(*args, **kwargs)
        record.rewards += values
        return values

    run.trainer.reward_funcs = [recording_reward]
    return run, record


@pytest.fixture(scope="module")
def eapo_run(tiny_model_dir, tmp_path_factory):
    """Three EAPO updates through GRPOTrainer on the tiny policy, recorded."""
    config = TrainConfig.from_dict(
        {
            "algo": "eapo",
            "acceptance_scale": 1.0,  # rho = 1 / s
            "engine": "trl",
            "model": str(tiny_model_dir),
            "out": str(tmp_path_factory.mktemp("trl") / "eapo"),
            "steps": 3,
            "problems_per_step": 2,
            "group_size": 4,
            "train_difficulties": (2,),
            "eval_difficulties": (1,),
            "eval_problems": 2,
            "eval_k": 2,
            "tensorboard": False,
            "seed": 1,
        }
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        run, record = recorded_run(config, monkeypatch)
        start = {name: p.detach().clone() for name, p in run.trainer.model.named_parameters()}
        run.trainer.train()
        final = trl_train.conclude(run, 0.0)
    return run, record, start, final


def test_three_eapo_updates_through_grpo_trainer(eapo_run):
    run, record, start, final = eapo_run
    assert run.trainer.state.global_step == 3 and len(record.outputs) == 3
    moved = [name for name, p in run.trainer.model.named_parameters() if not torch.equal(p, start[name])]
    assert moved, "no parameter changed in 3 updates"
    rows = [json.loads(line) for line in (run.metrics.log.path).read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    expected = set(rollout_metrics(record.episodes[0], 0.0)) | {"loss", "grad_norm", "clip_fraction"}
    expected |= {"all_equal_groups", "step_seconds", "tokens_per_s", "trained_episodes"}
    assert all(expected <= set(row) for row in rows)
    assert "eval/avg_at_k" in rows[-1] and final["eval/avg_at_k"] == rows[-1]["eval/avg_at_k"]
    assert (run.metrics.log.path.parent / "checkpoint" / "model" / "config.json").exists()


def test_rho_and_the_turn_budget_follow_the_trainers_step(eapo_run):
    run, record, _, _ = eapo_run
    rows = [json.loads(line) for line in run.metrics.log.path.read_text().splitlines()]
    assert [row["acceptance_rate"] for row in rows] == pytest.approx([1.0, 1 / 2, 1 / 3])
    budgets = [{e.info["max_turns"] for e in episodes} for episodes in record.episodes]
    assert budgets == [{1 + round(9 * (1 - step / 3))} for step in (1, 2, 3)]  # linear 10 -> 1
    assert run.rollout.episode_rules == EAPOAgent.training_episodes(run.config)  # the native agent's episodes
    assert run.config.options.schedule_steps == 3  # fixed at the start, as our loop does


def test_several_passes_per_update_mean_what_they_mean_natively(small_config, monkeypatch):
    """``epochs_per_batch`` 2: each update (rollout batch) is two optimizer steps of TRL's; rho, the
    problems and one metrics row follow the update, as in our loop."""
    config = on_trl(
        small_config, algo="eapo", acceptance_scale=1, epochs_per_batch=2, steps=2, problems_per_step=2,
        group_size=2,
    )
    run, record = recorded_run(config, monkeypatch)
    run.trainer.train()
    assert run.trainer.state.global_step == 4 and len(record.outputs) == 2  # 2 rollouts, 2 passes each
    rows = [json.loads(line) for line in run.metrics.log.path.read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
    assert [row["acceptance_rate"] for row in rows] == pytest.approx([1.0, 1 / 2])  # rho_s per update
    agent = EAPOAgent(run.trainer.model, run.rollout.tokenizer, config.replace(engine="native"))
    for step, episodes in zip((1, 2), record.episodes, strict=True):
        drawn = [e.problem_id for group in agent.collect_groups(step, 2, 2) for e in group]
        assert [e.problem_id for e in episodes] == drawn


def test_env_mask_covers_exactly_the_policy_tokens(eapo_run):
    """Decoded: every run of mask 1 is a turn the generation backend wrote, every run of mask 0 is a
    block of expert replies (or notices), and that mask is the loss mask TRL built (its rows shuffled,
    so matched by their completion ids)."""
    run, record, _, _ = eapo_run
    tokenizer = run.rollout.tokenizer
    checked = blocks = 0
    for output, episodes, turns, trained in zip(
        record.outputs, record.episodes, record.turns, record.trained, strict=True
    ):
        for row, (ids, mask) in enumerate(zip(output["completion_ids"], output["env_mask"], strict=True)):
            masks = [m for i, m in trained if i[: len(ids)] == ids and not any(m[len(ids) :])]
            assert [float(bit) for bit in mask] in [m[: len(mask)] for m in masks]
            if episodes[row].info.get("cut_off"):
                assert not any(mask)
                continue
            policy, environment = runs(ids, mask, 1), runs(ids, mask, 0)
            assert policy == turns[row]
            for block in environment:
                text = tokenizer.decode(block)
                assert text.startswith("\n<reply>") and REPLY_BLOCK.sub("", text) == "\n"
            checked, blocks = checked + 1, blocks + len(environment)
    assert checked >= 12 and blocks > 0


def test_a_consult_turns_replies_are_in_the_completion_ids(eapo_run):
    """An accepted query is answered by the reference expert with the problem's first solution step
    not yet written, and that reply's tokens follow the query inside the completion, masked."""
    run, record, _, _ = eapo_run
    tokenizer = run.rollout.tokenizer
    problems = run.rollout.envs.problems
    notices = PROTOCOL.notices
    answered = [
        (output["completion_ids"][row], output["env_mask"][row], episode)
        for output, episodes in zip(record.outputs, record.episodes, strict=True)
        for row, episode in enumerate(episodes)
        if episode.info.get("accepted", 0) > 0 and 0 in output["env_mask"][row]  # replies entered (not the
    ]  # last turn's: a turn that uses up the budget ends the episode before its replies arrive)
    assert answered, "no query was answered in 3 updates"
    for ids, mask, episode in answered:
        masked_text = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
        replies = [text for text in REPLY_BLOCK.findall(masked_text) if text not in notices]
        written = tokenizer.decode(ids[: mask.index(0)])
        steps = problems.get(episode.problem_id).solution_steps
        assert replies[0] == next(step for step in steps if step not in written)


class ReplayBackend:
    """Writes each episode's recorded turns again, in order (keys are env indices)."""

    def __init__(self, turns: dict[int, list[list[int]]], max_new_tokens: int) -> None:
        self.turns = {key: list(value) for key, value in turns.items()}
        self.max_new_tokens = max_new_tokens

    def generate(self, contexts, keys, lock_queries=False) -> Samples:
        tokens = [self.turns[key].pop(0) for key in keys]
        return Samples(tokens, [[0.0] * len(t) for t in tokens], [True] * len(tokens))


def test_experts_off_same_rewards_as_our_grpo_rollouts(small_config, monkeypatch, tmp_path):
    """GRPO through TRL: the rewards TRL trained on equal the rewards our trainer's GRPO rollouts give
    the same sampled tokens (replayed through GRPOAgent's environments). A consultation cost makes the
    rewards differ between episodes, so a misordering would show."""
    config = on_trl(small_config, steps=1, problems_per_step=8, consult_cost=0.05, out=str(tmp_path / "grpo"))
    run, record = recorded_run(config, monkeypatch)
    run.trainer.train()
    trl_rewards = record.rewards
    episodes = record.episodes[0]
    assert len(trl_rewards) == len(episodes) == 32
    assert len(set(trl_rewards)) > 1, "all rewards equal: the comparison would not see a misordering"
    assert not any(e.info.get("consults") for e in episodes)  # query tag locked, as in our GRPO
    agent = GRPOAgent(run.trainer.model, run.rollout.tokenizer, config.replace(engine="native"))
    replayed = play_episodes(
        ReplayBackend(record.turns[0], config.max_new_tokens),
        run.rollout.tokenizer,
        agent.envs,
        list(range(len(episodes))),
        [e.problem_id for e in episodes],
        config.max_context,
    )
    assert [e.reward for e in replayed] == pytest.approx(trl_rewards)  # TRL's rewards are float32
    assert [e.completion_ids for e in replayed] == [e.completion_ids for e in episodes]


def test_one_seed_draws_the_same_problems_and_episode_seeds_on_both_engines(small_config, monkeypatch):
    """Three updates' draws: the problems TRL's sampler hands the rollout, and the env seeds each
    episode is reset with, equal what our loop's GRPO agent plays."""
    from eapo_agents.engines import trl_rollout
    from eapo_agents.training import agent as agent_module

    config = small_config.replace(steps=3, seed=5, train_difficulties=(1, 2, 3))
    played: dict[str, list] = {"native": [], "trl": []}

    def recorder(engine):
        def play(backend, tokenizer, envs, seeds, problem_ids, *args, **kwargs):
            played[engine].append((list(problem_ids), list(seeds)))
            return [trl_rollout.Episode(problem_id, [0], done=True) for problem_id in problem_ids]

        return play

    monkeypatch.setattr(agent_module, "play_episodes", recorder("native"))
    monkeypatch.setattr(trl_rollout, "play_episodes", recorder("trl"))
    run = trl_train.build(on_trl(config), progress=False)
    batches = iter(run.trainer.get_train_dataloader())
    agent = GRPOAgent(run.trainer.model, run.rollout.tokenizer, config)
    for step in (1, 2, 3):
        agent.collect_groups(step, config.problems_per_step, config.group_size)
        run.rollout([row["prompt"] for row in next(batches)], run.trainer)
    assert played["trl"] == played["native"]
    assert len({problem for problems, _ in played["native"] for problem in problems}) > 2  # not one problem


def test_train_engine_trl_command(small_config, capsys):
    """``eapo-gym train --engine trl`` writes metrics.jsonl in our schema, eval.json and a checkpoint."""
    out = small_config.out
    main(
        [
            "train", "--engine", "trl", "--algo", "eapo", "--model", small_config.model,
            "--steps", "2", "--problems-per-step", "2", "--group-size", "2", "--train-difficulties", "1",
            "--eval-difficulties", "1", "--eval-problems", "2", "--eval-k", "2", "--out", out,
            "--tensorboard", "false",
        ]
    )  # fmt: skip
    rows = [json.loads(line) for line in open(f"{out}/metrics.jsonl")]
    assert [row["step"] for row in rows] == [1, 2]
    for name in ("reward", "accuracy", "consult_rate", "acceptance_rate", "expert_calls", "loss"):
        assert all(isinstance(row[name], float) for row in rows)
    assert json.loads(open(f"{out}/config.json").read())["engine"] == "trl"
    assert "eapo: 2 updates" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--engine", "trl", "--algo", "sft"], "--algo sft: --engine trl trains eapo or grpo"),
        (
            ["--engine", "trl", "--algo", "grpo", "--dynamic-sampling", "true"],
            "--dynamic-sampling True: not available with --engine trl (only its default, False); "
            "--engine native honours it",
        ),
        (
            ["--engine", "trl", "--algo", "eapo", "--help-only-failing", "true"],
            "--help-only-failing True: not available with --engine trl",
        ),
        (["--engine", "trl", "--old-logprobs", "sampler"], "--old-logprobs sampler: not available"),
        (["--engine", "trl", "--micro-batch-tokens", "512"], "--micro-batch-tokens 512: not available"),
        (["--engine", "trl", "--save-every", "5"], "--save-every 5: not available with --engine trl"),
        (["--engine", "trl", "--device", "cuda:1"], "--device cuda:1: accelerate places each process"),
        (
            ["--vllm", "colocate"],
            "--vllm colocate: not available with --engine native (only its default, "
            "'off'); --engine trl honours it",
        ),
    ],
)
def test_engine_mistakes_fail_before_any_work(flags, message, capsys, tmp_path, fake_gpus):
    if "cuda:1" in flags:  # two GPUs, so that the device itself passes its check
        fake_gpus(2)
    with pytest.raises(SystemExit):
        main(["train", *flags, "--out", str(tmp_path / "run")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def runs(ids: list[int], mask: list[int], value: int) -> list[list[int]]:
    """The maximal runs of ``ids`` whose mask equals ``value``, in order."""
    found: list[list[int]] = []
    previous = None
    for token, bit in zip(ids, mask, strict=True):
        if bit == value:
            if previous != value:
                found.append([])
            found[-1].append(token)
        previous = bit
    return found
