"""Every algorithm and baseline trains through the shared loop; losses, schedules, checkpoints, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from eapo_agents.algorithms.eapo import shaped_expert_term
from eapo_agents.cli import main as cli_main
from eapo_agents.training import loop
from eapo_agents.training.agent import BaseAgent
from eapo_agents.training.batch import length_buckets, loss_weights, pack_episodes, policy_logprobs
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.evaluation import evaluate, pass_at_k, summarise
from eapo_agents.training.loop import train
from eapo_agents.training.policy import load_policy
from eapo_agents.training.registry import agent_class, register_agent
from eapo_agents.training.run import TIMING_METRICS


def rows(out: str) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def weights(directory: Path) -> torch.Tensor:
    model, _ = load_policy(directory)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("algo", ["grpo", "ppo", "eapo", "sft", "distill"])
def test_each_algorithm_trains_with_finite_loss_and_moves_the_weights(algo, small_config, tiny_model_dir):
    sft_like = {"sft_batch_size": 8} if algo in ("sft", "distill") else {}
    final = train(small_config.replace(algo=algo, **sft_like), progress=False)
    log = rows(small_config.out)
    assert [r["step"] for r in log] == [1, 2]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in log)
    assert final["eval/d1/pass_at_k"] >= final["eval/d1/avg_at_k"]  # pass@k bounds avg@k from above
    assert not torch.equal(weights(tiny_model_dir), weights(Path(small_config.out) / "checkpoint" / "model"))


@pytest.mark.parametrize(
    "algo, options",
    [
        ("grpo", {"kl_beta": 0.1, "epochs_per_batch": 2, "micro_batch_size": 3,
                  "loss_aggregation": "sequence", "scale_rewards": False}),
        ("ppo", {"kl_beta": 0.1, "critic": "separate", "epochs_per_batch": 2, "micro_batch_size": 3}),
    ],
)  # fmt: skip
def test_optional_terms_kl_epochs_and_micro_batches_train(algo, options, small_config):
    config = small_config.replace(algo=algo, **options)
    train(config, progress=False)
    for row in rows(config.out):
        assert math.isfinite(row["loss"]) and row["grad_norm"] > 0
        assert algo == "ppo" or row["kl"] > 0  # GRPO logs its KL term; PPO puts it in the rewards


def test_dynamic_sampling_trains_only_groups_with_different_rewards(small_config):
    config = small_config.replace(algo="grpo", dynamic_sampling=True, steps=3)
    train(config, progress=False)
    for row in rows(config.out):
        informative = round((1 - row["all_equal_groups"]) * config.problems_per_step)
        assert row["trained_episodes"] == informative * config.group_size


def test_eapo_consults_and_anneals_acceptance(small_config):
    config = small_config.replace(algo="eapo", steps=4, problems_per_step=4, group_size=4, acceptance_scale=1)
    train(config, progress=False)
    log = rows(config.out)
    assert [r["acceptance_rate"] for r in log[:4]] == [1.0, 0.5, pytest.approx(1 / 3), 0.25]
    assert sum(r["expert_calls"] for r in log) > 0
    assert log[0]["helped_episodes"] > 0 and 0 <= log[0]["rescued_groups"] <= 1  # where the help went
    grpo = config.replace(algo="grpo", out=config.out + "-grpo")
    train(grpo, progress=False)
    assert all(r["expert_calls"] == 0 and r["acceptance_rate"] == 0.0 for r in rows(grpo.out)[:4])
    assert "helped_episodes" not in rows(grpo.out)[0]


def test_eapo_loss_never_sees_expert_reply_tokens(small_config, tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir)
    agent = agent_class("eapo")(model, tokenizer, small_config.replace(algo="eapo", problems_per_step=4))
    groups = agent.collect_groups(1, 4, 4)
    episodes = [e for group in groups for e in group]
    assert any(e.info["accepted"] for e in episodes)
    reply_id = tokenizer.convert_tokens_to_ids("<reply>")
    for episode in episodes:
        injected = [t for t, m in zip(episode.completion_ids, episode.mask, strict=True) if not m]
        assert injected.count(reply_id) == episode.info["consults"]  # every reply block is masked out
        assert all(not (m and x) for m, x in zip(episode.mask, episode.expert_mask, strict=True))
    consulted = next(e for e in episodes if e.info["accepted"])
    steps = agent.envs.problems.get(consulted.problem_id).solution_steps
    runs, run = [], []
    for token, expert in zip(consulted.completion_ids, consulted.expert_mask, strict=True):
        if expert:
            run.append(token)
        elif run:
            runs, run = [*runs, tokenizer.decode(run)], []
    assert runs and all(text in steps for text in runs)  # the expert mask covers each reply's step, no more


def test_off_policy_expert_term_raises_the_likelihood_of_expert_replies(small_config, tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir)
    config = small_config.replace(algo="eapo", problems_per_step=4, expert_token_coef=1.0)
    agent = agent_class("eapo")(model, tokenizer, config)
    episodes = [e for group in agent.collect_groups(1, 4, 4) for e in group if e.info["accepted"]]
    batch = pack_episodes(episodes, tokenizer.pad_token_id, agent.device)
    assert (batch.expert_mask > 0).any()
    weights = loss_weights(batch.expert_mask)
    term = shaped_expert_term(policy_logprobs(model, batch), weights, config.options.expert_shaping)
    (-term).backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= 0.1 * parameter.grad  # one small plain gradient step on the term alone
        after = policy_logprobs(model, batch)
    assert (
        shaped_expert_term(after, weights, config.options.expert_shaping) > term
    )  # f(pi) of expert tokens rose
    losses = {}
    for coef in (0.0, 1.0):  # inside the update, the term is added to GRPO's loss
        model, tokenizer = load_policy(tiny_model_dir)
        agent = agent_class("eapo")(model, tokenizer, config.replace(expert_token_coef=coef))
        batch = agent.pack(episodes)
        with torch.no_grad():
            old = agent.logprobs(model, batch)
        batch = dataclasses.replace(batch, advantages=torch.ones_like(old), old_logprobs=old)
        batch = dataclasses.replace(batch, extras=agent.loss_inputs(batch, episodes))
        losses[coef] = agent.update(batch, agent.loss)["loss"]
    assert math.isfinite(losses[1.0]) and losses[1.0] < losses[0.0]


def test_baselines_evaluate_without_training(small_config):
    base = train(small_config.replace(algo="base"), progress=False)
    scripted = small_config.replace(algo="workflow", queries="scripted", out=small_config.out + "-s")
    assert base["eval/consult_rate"] < 1.0
    assert train(scripted, progress=False)["eval/consult_rate"] == 1.0  # the scripted turn always asks
    workflow = small_config.replace(algo="workflow", out=small_config.out + "-w")
    own = train(workflow, progress=False)  # the paper's: the policy's own queries, every one answered
    model, tokenizer = load_policy(small_config.model)
    alone_with_experts = evaluate(model, tokenizer, workflow, with_experts=True)
    assert {k: own[k] for k in alone_with_experts} == alone_with_experts


def test_a_resume_to_more_steps_continues_the_schedules_without_a_jump(small_config):
    """A 2-update EAPO run resumed to 4: its linear schedules keep their length of 2 (config.json),
    so rho and the turn budget stay at their ends; they would jump back up under a length of 4."""
    config = small_config.replace(algo="eapo", acceptance="linear", max_turns=5, steps=2)
    train(config, progress=False)
    assert json.loads((Path(config.out) / "config.json").read_text())["schedule_steps"] == 2
    cli_main(["train", "--resume", "--steps", "4", "--out", config.out])
    log = [r for r in rows(config.out) if "turn_budget" in r]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["acceptance_rate"] for r in log] == [0.5, 0.0, 0.0, 0.0]
    assert [r["turn_budget"] for r in log] == [3, 1, 1, 1]  # 1 + round(4 * (1 - s / 2)), then 1


def test_resume_after_a_kill_continues_to_the_same_metrics(small_config):
    straight = small_config.replace(algo="grpo", steps=4, out=small_config.out + "-straight")
    train(straight, progress=False)
    first = small_config.replace(algo="grpo", steps=2)
    train(first, progress=False)
    with (Path(first.out) / "metrics.jsonl").open("a") as handle:  # a row logged after the last checkpoint
        handle.write(json.dumps({"step": 3, "loss": 123.0}) + "\n")
    train(first.replace(steps=4, resume=True), progress=False)

    def stable(row):
        return {k: v for k, v in row.items() if k not in TIMING_METRICS and not k.startswith("eval/")}

    assert [stable(r) for r in rows(first.out) if r["step"] > 2] == [
        stable(r) for r in rows(straight.out)[2:]
    ]


def test_smaller_curve_evaluations_change_neither_the_training_nor_the_last_evaluation(
    small_config, monkeypatch
):
    asked: list[int] = []
    real = loop.evaluate
    monkeypatch.setattr(
        loop, "evaluate", lambda *args, **kw: asked.append(kw["problems"]) or real(*args, **kw)
    )
    full = small_config.replace(
        algo="eapo", steps=3, eval_every=1, eval_problems=4, out=small_config.out + "-full"
    )
    curves = full.replace(curve_eval_problems=1, out=small_config.out + "-curves")
    train(full, progress=False)
    train(curves, progress=False)
    assert asked == [4, 4, 4, 1, 1, 4]  # the curves' evaluations on 1 problem per level, the last on 4

    def stable(row):
        return {k: v for k, v in row.items() if k not in TIMING_METRICS and not k.startswith("eval/")}

    assert [stable(r) for r in rows(curves.out)] == [stable(r) for r in rows(full.out)]
    last = [json.loads((Path(run.out) / "eval.json").read_text()) for run in (full, curves)]
    assert [{k: v for k, v in e.items() if k not in TIMING_METRICS} for e in last][0] == {
        k: v for k, v in last[1].items() if k not in TIMING_METRICS
    }


@register_agent("test-random-search")
class RandomSearchAgent(BaseAgent):
    """A custom agent defined in a test: perturb the weights, keep them if rollout reward rises."""

    def train_step(self, step: int) -> dict[str, float]:
        groups = self.collect_groups(step, 2, 2)
        reward = float(np.mean([e.reward for group in groups for e in group]))
        with torch.no_grad():
            for parameter in self.model.parameters():
                parameter.add_(1e-3 * torch.randn_like(parameter))
        return {"reward": reward, "loss": -reward}


def test_a_custom_agent_trains_and_evaluates_through_the_cli(small_config, tmp_path):
    out = tmp_path / "custom"
    cli_main(["train", "--algo", "test-random-search", "--model", small_config.model, "--steps", "2",
              "--out", str(out), "--eval-problems", "2", "--eval-k", "1", "--eval-difficulties", "1",
              "--train-difficulties", "1", "--tensorboard", "false"])  # fmt: skip
    assert [r["step"] for r in rows(str(out))] == [1, 2]
    cli_main(["eval", "--checkpoint", str(out), "--k", "2", "--problems", "2"])
    metrics = json.loads((out / "eval_k2.json").read_text())
    assert {"eval/avg_at_k", "eval/d1/avg_at_k", "eval/consult_rate"} <= set(metrics)


def test_config_file_and_flags_override_in_order(tmp_path, small_config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"lr": 0.5, "steps": 7, "eval_difficulties": [2, 3]}))
    captured = {}

    @register_agent("test-capture")
    class Capture(BaseAgent):
        trains = False

        def __init__(self, model, tokenizer, config):
            captured["config"] = config
            super().__init__(model, tokenizer, config)

        def train_step(self, step):
            return {}

    cli_main(["train", "--algo", "test-capture", "--config", str(path), "--steps", "9", "--model",
              small_config.model, "--out", str(tmp_path / "cap"), "--eval-problems", "1", "--eval-k", "1",
              "--tensorboard", "no"])  # fmt: skip
    config = captured["config"]
    assert (config.lr, config.steps, config.eval_difficulties) == (0.5, 9, (2, 3))


def test_lora_trains_only_the_adapter(small_config, tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir, lora_rank=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    agent = agent_class("grpo")(model, tokenizer, small_config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics = agent.train_step(1)
    assert math.isfinite(metrics["loss"])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(trainable)


def test_grpo_raises_accuracy_on_easy_problems(small_config, tmp_path):
    """On single-digit sums, 20 GRPO updates must beat the (SFT warm-started) policy they began from."""
    problems = tmp_path / "single_digit_sums.jsonl"
    records = [
        {"id": f"{split}-{a}+{b}", "question": f"{a}+{b}=?", "answer": str(a + b),
         "solution": [f"{a}+{b}={a + b}"], "split": split}
        for split in ("train", "test") for a in range(10) for b in range(10)
    ]  # fmt: skip
    problems.write_text("".join(json.dumps(r) + "\n" for r in records))
    easy = dataclasses.replace(
        small_config, problems=str(problems), train_difficulties=(), eval_difficulties=(),
        eval_problems=100, eval_k=1, eval_every=100, save_every=100,
    )  # fmt: skip
    # 15 SFT steps leave the shipped policy half-way (about 0.3 greedy): room for GRPO to show
    warm = easy.replace(algo="sft", steps=15, sft_batch_size=32, lr=2e-3, out=f"{tmp_path}/w")
    train(warm, progress=False)
    grpo = dataclasses.replace(
        easy, algo="grpo", model=str(tmp_path / "w" / "checkpoint" / "model"), steps=20,
        problems_per_step=8, group_size=8, lr=1e-4, out=str(tmp_path / "grpo"),
    )  # fmt: skip
    train(grpo, progress=False)
    greedy = easy.replace(algo="base", temperature=0.0)  # greedy evaluation: no policy-gradient loss
    before = evaluate(*load_policy(tmp_path / "w" / "checkpoint" / "model"), greedy)["eval/avg_at_k"]
    after = evaluate(*load_policy(tmp_path / "grpo" / "checkpoint" / "model"), greedy)["eval/avg_at_k"]
    assert 0.1 < before < 0.8
    assert after >= before + 0.05, (before, after)


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 6, 5) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)
    correct = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=float)
    summary = summarise(correct, k=2)
    assert summary["avg_at_k"] == pytest.approx(5 / 8)
    assert summary["pass_at_k"] == pytest.approx((0.5 + 1.0) / 2)
    assert summary["avg_at_k_var"] == pytest.approx(np.var([1.0, 0.5, 0.5, 0.5]))


def test_unknown_algorithm_is_a_clear_error(small_config):
    with pytest.raises(ValueError, match="unknown algorithm 'nope'; choose one of adaptive_hints, base"):
        small_config.replace(algo="nope")


def test_distill_traces_answer_with_the_final_value_not_the_last_equation():
    import numpy as np

    from eapo_agents.rollout.teacher import distill_episode, teacher_episode
    from eapo_agents.training.environments import make_env
    from eapo_gym.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    env = make_env(TrainConfig(train_difficulties=(2,)), "train", (2,), 1.0)
    episode = distill_episode(env, tokenizer, {"seed": 1}, np.random.default_rng(0))
    distilled = env.transcript
    teacher_episode(env, tokenizer, {"seed": 1}, np.random.default_rng(0))
    assert episode.reward == 1.0 and distilled == env.transcript  # the reference expert's solution
    assert distilled.endswith(f"<answer>{env.problem.answer}</answer>")


def test_grpo_rollouts_cannot_consult_and_eapo_rollouts_can(small_config, tiny_model_dir):
    """GRPO is self-exploratory RL: no consult action (the query tag is locked), as in the paper."""
    for algo, consults in (("grpo", False), ("eapo", True)):
        model, tokenizer = load_policy(tiny_model_dir)
        agent = agent_class(algo)(model, tokenizer, small_config.replace(algo=algo, problems_per_step=4))
        episodes = [e for group in agent.collect_groups(1, 4, 4) for e in group]
        asked = sum(e.info["consults"] for e in episodes)
        assert (asked > 0) == consults, (algo, asked)


def test_help_only_for_groups_whose_own_rollouts_all_fail(small_config, tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir)
    config = small_config.replace(
        algo="eapo", help_only_failing=True, train_difficulties=(1, 3), problems_per_step=6
    )
    agent = agent_class("eapo")(model, tokenizer, config)
    groups = agent.training_groups(1)
    helped = [group for group in groups if group[0].info["acceptance_rate"] > 0]
    assert 0 < agent.helped_share <= 1 and len(helped) == round(agent.helped_share * 6)
    assert all(e.info["acceptance_rate"] == 1.0 for g in helped for e in g)
    unaided = [e for g in groups if g not in helped for e in g]
    assert all(e.info["consults"] == 0 for e in unaided)  # the own rollouts cannot consult
    metrics = agent.train_step(2)
    assert metrics["helped_groups"] == agent.helped_share


def test_teacher_traces_ask_sub_questions_and_carry_on_after_unavailable_and_exhausted():
    import numpy as np

    from eapo_agents.rollout.teacher import teacher_episode
    from eapo_agents.training.environments import make_env
    from eapo_gym.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    env = make_env(TrainConfig(train_difficulties=(2,)), "train", (2,), 0.6)  # two steps: often all known
    rng = np.random.default_rng(0)
    seen = {"sub-question": 0, "unavailable": 0, "exhausted": 0}
    for seed in range(60):
        episode = teacher_episode(env, tokenizer, {"seed": seed}, rng, consult=True)
        assert episode.reward == 1.0  # the teacher always finishes the solution
        transcript = env.transcript
        seen["sub-question"] += "<expert>What is " in transcript
        seen["unavailable"] += env.protocol.unavailable_notice in transcript
        seen["exhausted"] += env.protocol.exhausted_notice in transcript
    assert all(count > 0 for count in seen.values()), seen


def shift_sampled_logprobs(agent, shift: float) -> None:
    """Make the agent's sampler report its log-probabilities off by ``shift`` (the tokens are unchanged)."""
    generate = agent.backend.generate

    def shifted(contexts, keys, lock_queries=False):
        samples = generate(contexts, keys, lock_queries)
        samples.logprobs[:] = [[value + shift for value in row] for row in samples.logprobs]
        return samples

    agent.backend.generate = shifted


def test_every_update_logs_the_gap_between_sampler_and_trainer_logprobs(small_config, tiny_model_dir):
    """EAPO, whose sampler has no query lock: in fp32 its log-probs are the trainer's to rounding.
    (GRPO's locked sampler reports pi renormalised without the tag, so there the gap is the lock's.)"""
    model, tokenizer = load_policy(tiny_model_dir)
    agent = agent_class("eapo")(model, tokenizer, small_config.replace(algo="eapo"))
    metrics = agent.train_step(1)
    assert 0 <= metrics["logprob_gap_mean"] <= metrics["logprob_gap_max"] < 1e-4
    shift_sampled_logprobs(agent, 0.5)
    metrics = agent.train_step(2)
    assert metrics["logprob_gap_mean"] == pytest.approx(0.5, abs=1e-4)
    assert metrics["logprob_gap_max"] == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("old, clipped", [("trainer", False), ("sampler", True)])
def test_the_ratios_old_logprobs_are_the_trainers_or_the_samplers(old, clipped, small_config, tiny_model_dir):
    """A sampler whose log-probs are 1 lower than the trainer's: with the sampler's as pi_old the first
    pass's ratio is e > 1 + clip_high on every token, so clipping shows; with the trainer's it is 1."""
    model, tokenizer = load_policy(tiny_model_dir)
    config = small_config.replace(algo="eapo", old_logprobs=old, group_size=8)
    agent = agent_class("eapo")(model, tokenizer, config)
    shift_sampled_logprobs(agent, -1.0)
    metrics = agent.train_step(1)
    assert metrics["all_equal_groups"] < 1  # some advantage is not 0, so clipping can show
    assert (metrics["clip_fraction"] > 0) == clipped


def test_help_only_failing_replays_draw_seeds_of_their_own_on_each_process(small_config, tiny_model_dir):
    """The replayed groups' seeds come from a stream of their own that includes the process's rank:
    no process replays on the seeds of another, nor on any process's own episode draws."""
    from types import SimpleNamespace

    from eapo_agents.training.run import episode_rng

    model, tokenizer = load_policy(tiny_model_dir)
    config = small_config.replace(algo="eapo", help_only_failing=True)
    agent = agent_class("eapo")(model, tokenizer, config)
    played = []

    def play(step, seeds, problem_ids, reset_options=None, lock_queries=None):  # every group fails
        played.append(seeds)
        return [SimpleNamespace(info={"correct": False}, problem_id=p) for p in problem_ids]

    agent.play = play
    replays = {}
    for rank in (0, 1):
        agent.accelerator = SimpleNamespace(process_index=rank, num_processes=2)
        played.clear()
        agent.training_groups(3)
        unaided, replays[rank] = played
        assert not set(unaided) & set(replays[rank])
    assert not set(replays[0]) & set(replays[1])
    for rank in range(4):  # nor the first draws of any process's episode stream
        drawn = episode_rng(config.seed, 3, rank).integers(2**31, size=16).tolist()
        assert not set(drawn) & (set(replays[0]) | set(replays[1]))


def test_a_lora_run_resumes_training_its_adapter_to_the_same_metrics(small_config):
    from safetensors.torch import load_file

    lora = small_config.replace(lora_rank=4, eval_problems=2, eval_k=1)
    straight = lora.replace(steps=2, out=lora.out + "-straight")
    train(straight, progress=False)
    first = lora.replace(steps=1)
    train(first, progress=False)
    adapter = Path(first.out) / "checkpoint" / "model" / "adapter_model.safetensors"
    after_one = load_file(adapter)
    train(first.replace(steps=2, resume=True), progress=False)

    def stable(row):
        return {k: v for k, v in row.items() if k not in TIMING_METRICS}

    assert [stable(r) for r in rows(first.out) if r["step"] > 1] == [
        stable(r) for r in rows(straight.out)[1:]
    ]
    resumed = load_file(adapter)
    uninterrupted = load_file(Path(straight.out) / "checkpoint" / "model" / "adapter_model.safetensors")
    assert resumed.keys() == uninterrupted.keys() == after_one.keys()
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed)
    assert not all(torch.equal(resumed[name], after_one[name]) for name in resumed)  # update 2 trained it
    assert not (adapter.parent / "model.safetensors").exists()  # the checkpoint holds the adapter only


def test_one_pass_takes_pi_old_from_its_own_forward_with_the_same_update(small_config, tiny_model_dir):
    """mu = 1, trainer pi_old: no forward before the update; the same loss, gradient and gap as with one."""
    results = {}
    for single in (True, False):
        model, tokenizer = load_policy(tiny_model_dir)
        torch.manual_seed(0)
        agent = agent_class("grpo")(model, tokenizer, small_config.replace(seed=3))
        forwards: list[int] = []
        agent.logprobs = lambda model, batch, _original=agent.logprobs, _calls=forwards: (
            _calls.append(1) or _original(model, batch)
        )
        type(agent).single_pass = property(lambda self, value=single: value)
        try:
            results[single] = agent.train_step(1)
        finally:
            del type(agent).single_pass  # back to PolicyGradientAgent's
        assert len(forwards) == (0 if single else 1)
    for name in ("loss", "grad_norm", "clip_fraction", "logprob_gap_max"):
        assert results[True][name] == pytest.approx(results[False][name], rel=1e-6, abs=1e-9), name
    assert results[True]["logprob_gap_mean"] == pytest.approx(results[False]["logprob_gap_mean"], rel=1e-5)
    assert results[True]["logprob_gap_mean"] > 0  # the sampler's and the trainer's log-probabilities differ


def test_micro_batches_pad_least_within_the_budget():
    lengths = [40, 12, 38, 11, 39, 10, 13, 41]
    groups = length_buckets(lengths, max_rows=0, budget=128)
    assert sorted(row for group in groups for row in group) == list(range(8))
    for group in groups:
        assert len(group) * max(lengths[row] for row in group) <= 128
    padded = sum(len(group) * max(lengths[row] for row in group) for group in groups)
    assert padded == 2 * 41 + 2 * 39 + 4 * 13 and len(groups) == 3  # [41, 40] [39, 38] [13, 12, 11, 10]
    assert length_buckets(lengths, max_rows=2, budget=0) == [[7, 0], [4, 2], [6, 1], [3, 5]]
    assert length_buckets(lengths) == [[7, 0, 4, 2, 6, 1, 3, 5]]  # no limits: one group
    assert length_buckets([300, 5], budget=128) == [[0], [1]]  # a row longer than the budget goes alone
