"""Every bad input gets one clear line (exit status 2) and loses nothing: one test per row of the bad-input
table, and per check behind it. Validation failures happen before any model loads."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from eapo_agents.cli import build_parser, main, train_config, unlearned_levels_note
from eapo_agents.experiments.compare import CompareConfig, job_config, method_by_name
from eapo_agents.experiments.report import markdown_table, verdicts
from eapo_agents.training.config import SettingError, TrainConfig
from eapo_agents.training.loop import CHECKPOINT, STATE_FILE, checkpoint_state
from eapo_gym.experts import ExpertPanel, ExpertQuery, FunctionExpert

FAST = [
    "--problems-per-step", "2", "--group-size", "2", "--train-difficulties", "1", "--eval-difficulties", "1",
    "--eval-problems", "2", "--eval-k", "1", "--tensorboard", "false",
]  # fmt: skip


def fails(argv: list[str], capsys) -> str:
    """Run the command; assert it exits with status 2 and one line on stderr; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2, error
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return error.strip()


@pytest.fixture
def no_model_loads(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a model was loaded")

    for module in ("eapo_agents.training.loop", "eapo_agents.training.policy"):
        monkeypatch.setattr(f"{module}.load_policy", never)


def hashes(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A finished 2-update GRPO run, checkpointed after each update (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    main(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "2",
            "--save-every",
            "1",
            "--out",
            str(out),
            *FAST,
        ]
    )
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


# ---- the table's rows -------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", ["0", "-1"])
def test_steps_below_one_is_an_argument_error(steps, tmp_path, capsys, no_model_loads):
    line = fails(["train", "--steps", steps, "--out", str(tmp_path / "r")], capsys)
    assert line == f"eapo-gym train: error: --steps: expected an integer >= 1, got {steps}"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("algo", ["grpo", "eapo"])
def test_group_relative_algorithms_refuse_a_group_of_one(algo, tmp_path, capsys, no_model_loads):
    line = fails(
        ["train", "--algo", algo, "--group-size", "1", "--steps", "2", "--out", str(tmp_path)], capsys
    )
    assert line == (
        f"eapo-gym train: error: --group-size: expected an integer >= 2 for --algo {algo} "
        "(advantages are relative to the group), got 1"
    )
    assert TrainConfig(algo="ppo", group_size=1).group_size == 1  # PPO has no groups


def test_a_bad_config_file_value_names_the_file_key_value_and_rule(tmp_path, capsys, no_model_loads):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2]\n")
    line = fails(["train", "--config", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert line == f"eapo-gym train: error: --config {bad}: lr: expected a float > 0, got [1, 2]"
    bad.write_text("steps: many\nlr: [1, 2]\n")
    line = fails(["train", "--config", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert line == f"eapo-gym train: error: --config {bad}: steps: expected an integer >= 1, got 'many'"


@pytest.mark.parametrize("engine", ["native", "trl"])
def test_a_missing_model_directory_is_never_looked_up_on_a_hub(engine, tmp_path, capsys, no_model_loads):
    line = fails(["train", "--engine", engine, "--model", "/nope", "--out", str(tmp_path / "r")], capsys)
    assert line == "eapo-gym train: error: --model /nope: no such directory"
    assert not (tmp_path / "r").exists()
    (tmp_path / "empty").mkdir()
    line = fails(["train", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "r")], capsys)
    assert line.endswith(f"--model {tmp_path / 'empty'}: not a model directory (no config.json)")


def test_truncated_weights_are_named_as_damaged(tiny_model_dir, tmp_path, capsys, no_model_loads):
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    line = fails(["train", "--model", str(model), "--out", str(tmp_path / "r")], capsys)
    assert line.startswith(f"eapo-gym train: error: --model {model}: model.safetensors is damaged (")
    weights.write_bytes(b"\x10\x00")
    line = fails(["eval", "--checkpoint", str(model)], capsys)
    assert line.startswith(f"eapo-gym eval: error: --checkpoint {model}: model.safetensors is damaged (")
    assert not (tmp_path / "r").exists()


def test_resume_without_a_checkpoint_fails(tmp_path, capsys, no_model_loads):
    (tmp_path / "empty").mkdir()
    line = fails(["train", "--resume", "--out", str(tmp_path / "empty")], capsys)
    assert line.startswith(
        f"eapo-gym train: error: --resume: {tmp_path / 'empty'} has no checkpoint to resume"
    )
    assert list((tmp_path / "empty").iterdir()) == []


def test_an_openai_expert_url_is_checked_at_start(tmp_path, capsys, no_model_loads):
    line = fails(["train", "--experts", "openai:foo@notaurl", "--out", str(tmp_path / "r")], capsys)
    assert line == (
        "eapo-gym train: error: --experts: expert spec 'foo@notaurl': the server URL must start with "
        "http:// or https://"
    )


def test_failing_experts_warn_once_past_a_share_of_the_queries(caplog):
    def down(query: ExpertQuery) -> str:
        raise ConnectionError("connection refused")

    queries = [[ExpertQuery(text="what next?", problem=None, context="")] for _ in range(8)]
    panel = ExpertPanel(
        [FunctionExpert(down, name="down")], failure_warning_share=0.5, failure_warning_after=10
    )
    with caplog.at_level(logging.WARNING, logger="eapo_gym.experts"):
        panel.round(queries)  # 8 queries: fewer than failure_warning_after
        assert not [r for r in caplog.records if "queries" in r.getMessage()]
        panel.round(queries)
        panel.round(queries)
    shares = [r.getMessage() for r in caplog.records if "of 16 queries" in r.getMessage()]
    assert len(shares) == 1 and "experts failed on 16 of 16 queries (100%, more than 50%)" in shares[0]
    assert not [r for r in caplog.records if "of 24 queries" in r.getMessage()]  # once
    panel = ExpertPanel(
        [FunctionExpert(down, name="down")], failure_warning_share=1.0, failure_warning_after=1
    )
    with caplog.at_level(logging.WARNING, logger="eapo_gym.experts"):
        caplog.clear()
        panel.round(queries)
    assert not [r for r in caplog.records if "queries (" in r.getMessage()]


def test_eval_of_a_model_directory_never_writes_into_it(tiny_model_dir, tmp_path, capsys):
    before = hashes(tiny_model_dir)
    flags = ["--k", "1", "--problems", "2", "--difficulties", "1", "--device", "cpu", "--dtype", "float32"]
    main(["eval", "--checkpoint", str(tiny_model_dir), *flags])
    assert "(not written: " in capsys.readouterr().out
    main(["eval", "--checkpoint", str(tiny_model_dir), *flags, "--out", str(tmp_path / "results")])
    assert hashes(tiny_model_dir) == before
    assert "eval/avg_at_k" in json.loads((tmp_path / "results" / "eval_k1.json").read_text())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('lr: "fast"', "lr: expected a float > 0, got 'fast'"),
        ("steps: 2.7", "steps: expected an integer >= 1, got 2.7"),
    ],
)
def test_a_bad_yaml_value_fails_before_any_model_loads_or_file_is_written(
    text, message, tmp_path, capsys, no_model_loads
):
    (tmp_path / "c.yaml").write_text(text + "\n")
    line = fails(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")], capsys)
    assert line == f"eapo-gym train: error: --config {tmp_path / 'c.yaml'}: {message}"
    assert not (tmp_path / "r").exists()


def test_eval_and_compare_take_trains_device_and_dtype(tmp_path, capsys):
    for command in ("eval", "compare"):
        line = fails(
            [command, "--dtype", "bf16", *(["--checkpoint", "x"] if command == "eval" else [])], capsys
        )
        assert "argument --dtype: invalid choice: 'bf16' (choose from 'auto', 'bfloat16'" in line
    line = fails(["compare", "--device", "gpu"], capsys)
    assert line == "eapo-gym compare: error: --device: expected auto, cpu, cuda or cuda:N, got 'gpu'"
    compare = CompareConfig(device="cpu", dtype="bfloat16", out=str(tmp_path))
    run = job_config(method_by_name("grpo"), 0, compare, (1, 2), tmp_path)
    assert (run.device, run.dtype) == ("cpu", "bfloat16")  # every run compare launches gets them


def test_one_seed_makes_no_spread_claim():
    methods = {
        name: {"avg_at_k": mean, "avg_at_k_std": 0.0, "pass_at_k": mean, "wall_s": 1.0, "expert_calls": 0.0,
               "updates_to_grpo_final": None}
        for name, mean in (("grpo", 0.10), ("eapo", 0.20))
    }  # fmt: skip
    result = {"methods": methods, "seeds": [0], "paper_avg_at_32": {}, "compare_config": {"eval_k": 8},
              "eval_levels": []}  # fmt: skip
    line = verdicts(result)[0]
    assert line.endswith("not established: one seed shows no spread (2 or more seeds are needed).")
    assert "std ranges" not in "\n".join(verdicts(result))
    assert "| n/a (1 seed) |" in markdown_table(result) and "| 0.0 |" not in markdown_table(result)


def test_default_levels_come_with_a_line_saying_why_zero_is_expected(tiny_model_dir, tmp_path, capsys):
    main(["train", "--model", str(tiny_model_dir), "--steps", "1", "--out", str(tmp_path / "r"), *FAST,
          "--eval-difficulties", "3,4"])  # fmt: skip
    printed = capsys.readouterr().out.strip().splitlines()
    assert "(levels 3,4)" in printed[-2] and printed[-1] == unlearned_levels_note(
        TrainConfig(model=str(tiny_model_dir))
    )
    note = unlearned_levels_note(TrainConfig())  # the defaults: the shipped policy, levels 3 and 4
    assert note == (
        "note: the starting policy scored 0% at levels 3, 4 before training (test split), so 0% there is "
        "expected from a short run; eapo-gym compare's rule picks levels the policy can learn: "
        "--train-difficulties 2,3 --eval-difficulties 2,3,4"
    )
    assert unlearned_levels_note(TrainConfig(eval_difficulties=(1, 2))) == ""


def test_compare_results_default_to_its_run_directory(tmp_path):
    assert CompareConfig.quick_preset().results_dir == Path("runs/compare")
    assert CompareConfig.quick_preset(results="benchmarks/results").results_dir == Path("benchmarks/results")
    tracked = Path(__file__).resolve().parent.parent / ".ci" / "run"
    assert "benchmarks/results" not in tracked.read_text()


# ---- the checks behind the rows -----------------------------------------------------------------------


def test_temperature_zero_is_refused_where_a_loss_divides_by_it():
    for algo in ("grpo", "ppo", "eapo"):
        with pytest.raises(SettingError, match=rf"temperature: expected a float > 0 for --algo {algo}"):
            TrainConfig(algo=algo, temperature=0.0)
    assert TrainConfig(algo="sft", temperature=0).temperature == 0.0  # greedy evaluation, no division


def test_yaml_text_is_converted_to_each_fields_type(tmp_path):
    (tmp_path / "c.yaml").write_text('lr: 1e-4\nshort_prompt: "false"\ntrain_difficulties: 2,3\nsteps: "5"\n')
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml")])
    config, sources = train_config(args)
    assert (config.lr, config.short_prompt, config.train_difficulties, config.steps) == (
        1e-4,
        False,
        (2, 3),
        5,
    )
    assert sources["lr"] == f"--config {tmp_path / 'c.yaml'}"


def test_options_are_checked_at_construction_whatever_their_source():
    with pytest.raises(SettingError, match="critic: expected one of head, separate, got 'nonsense'"):
        TrainConfig.from_dict({"algo": "ppo", "critic": "nonsense"})
    with pytest.raises(SettingError, match="loss_aggregation: expected one of token, sequence, constant"):
        TrainConfig.from_dict({"algo": "grpo", "loss_aggregation": "mean"})
    with pytest.raises(ValueError, match=r"steps: expected an integer >= 1, got 0"):
        TrainConfig(steps=0)  # a plain ValueError to Python users
    from eapo_agents.algorithms.eapo import EAPOOptions

    with pytest.raises(SettingError, match=r"expert_shaping: expected a float > 0, got -1"):
        EAPOOptions(expert_shaping=-1)


def test_a_failed_train_into_an_existing_run_leaves_its_config(tmp_path, capsys, no_model_loads):
    run = tmp_path / "eapo-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(algo="eapo").to_dict(), indent=2))
    before = hashes(run)
    fails(["train", "--model", "/nope", "--out", str(run)], capsys)
    fails(["train", "--steps", "0", "--out", str(run)], capsys)
    assert hashes(run) == before


def test_resume_never_drops_or_wipes_finished_updates(finished_run, tmp_path, capsys, no_model_loads):
    run = copy_of(finished_run, tmp_path)
    before = hashes(run)
    for steps in ("1", "2"):
        line = fails(["train", "--resume", "--steps", steps, "--out", str(run)], capsys)
        assert line == (
            f"eapo-gym train: error: --steps: expected more than 2, the update {run}'s checkpoint holds "
            f"(fewer would drop finished updates), got {steps}"
        )
    (run / CHECKPOINT / STATE_FILE).write_bytes(b"not a state")  # damaged: named, and left as it is
    line = fails(["train", "--resume", "--steps", "3", "--out", str(run)], capsys)
    assert line.startswith(f"eapo-gym train: error: --resume: the checkpoint in {run} is damaged (")
    (run / CHECKPOINT / STATE_FILE).unlink()  # missing: no restart that would wipe metrics.jsonl
    line = fails(["train", "--resume", "--steps", "3", "--out", str(run)], capsys)
    assert line == f"eapo-gym train: error: --resume: {run} has no checkpoint to resume"
    assert {name: digest for name, digest in hashes(run).items() if STATE_FILE not in name} == {
        name: digest for name, digest in before.items() if STATE_FILE not in name
    }


def test_a_checkpoint_is_replaced_whole(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    assert not (run / f"{CHECKPOINT}.tmp").exists() and not (run / f"{CHECKPOINT}.old").exists()
    (run / CHECKPOINT).rename(run / f"{CHECKPOINT}.old")  # stopped between a save's two renames
    assert checkpoint_state(run)["step"] == 2 and (run / CHECKPOINT / STATE_FILE).exists()


def test_a_non_finite_update_stops_the_run_and_keeps_the_last_checkpoint(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    clip = torch.nn.utils.clip_grad_norm_
    calls, saved = [], {}
    out = tmp_path / "run"

    def poisoned_on_the_second_update(parameters, max_norm, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return clip(parameters, max_norm, *args, **kwargs)
        saved.update(hashes(out / CHECKPOINT))  # update 1's checkpoint, as it was before update 2
        for parameter in parameters:
            parameter.grad.fill_(float("nan"))
        return torch.tensor(float("nan"))

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", poisoned_on_the_second_update)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                "--model",
                str(tiny_model_dir),
                "--steps",
                "3",
                "--save-every",
                "1",
                "--out",
                str(out),
                *FAST,
            ]
        )
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 1
    assert error == (
        "eapo-gym train: stopped: update 2 gave grad_norm nan; stopped before saving it: the checkpoint of "
        "update 1 is unchanged"
    )
    assert saved and hashes(out / CHECKPOINT) == saved and not (out / f"{CHECKPOINT}.tmp").exists()
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]


def test_non_finite_weights_are_never_saved(small_config, tmp_path):
    from eapo_agents.training.agent import BaseAgent
    from eapo_agents.training.loop import save_checkpoint
    from eapo_agents.training.policy import load_policy
    from eapo_agents.training.stopping import NonFiniteError

    agent = BaseAgent(*load_policy(small_config.model), small_config)
    with torch.no_grad():
        next(agent.model.parameters()).fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="update 5 left non-finite weights"):
        save_checkpoint(tmp_path, agent, 5, small_config)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["demo", "--episodes", "0"],
            "eapo-gym demo: error: argument --episodes: expected an integer >= 1, got '0'",
        ),
        (
            ["demo", "--seed", "-1"],
            "eapo-gym demo: error: argument --seed: expected an integer >= 0, got '-1'",
        ),
        (["compare", "--steps", "0"], "eapo-gym compare: error: --steps: expected an integer >= 1, got 0"),
        (
            ["compare", "--workers", "0"],
            "eapo-gym compare: error: --workers: expected an integer >= 1, got 0",
        ),
        (
            ["compare", "--methods", "nope"],
            "eapo-gym compare: error: --methods: unknown method 'nope'; choose",
        ),
    ],
)
def test_demo_and_compare_values_are_checked(argv, line, capsys):
    assert fails(argv, capsys).startswith(line)


def test_eval_values_are_checked_before_the_model_loads(tiny_model_dir, capsys, no_model_loads):
    line = fails(["eval", "--checkpoint", str(tiny_model_dir), "--k", "0"], capsys)
    assert line == "eapo-gym eval: error: --k: expected an integer >= 1, got 0"
    line = fails(["eval", "--checkpoint", "/nope"], capsys)
    assert line == "eapo-gym eval: error: --checkpoint /nope: no such directory"


def test_float16_through_trl_needs_cuda(tmp_path, capsys, no_model_loads):
    line = fails(["train", "--engine", "trl", "--algo", "grpo", "--device", "cpu", "--dtype", "float16",
                  "--out", str(tmp_path / "r")], capsys)  # fmt: skip
    assert line.endswith("--dtype float16: needs CUDA with --engine trl (TRL's fp16 mixed precision); "
                         "use bfloat16 or float32 on the CPU")  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_a_final_turn_budget_above_max_turns_is_refused_before_any_work(tmp_path, capsys, no_model_loads):
    line = fails(["train", "--max-turns", "3", "--final-turns", "5", "--out", str(tmp_path / "r")], capsys)
    assert line == "eapo-gym train: error: --final-turns: expected at most --max-turns (3), got 5"
    assert not (tmp_path / "r").exists()
    with pytest.raises(SettingError, match="final_turns"):
        TrainConfig(algo="eapo", max_turns=2, final_turns=3)


@pytest.mark.parametrize("decay", ["0", "-0.5", "1.5"])
def test_an_exponential_decay_outside_zero_to_one_is_refused(decay, tmp_path, capsys, no_model_loads):
    argv = ["train", "--algo", "eapo", "--acceptance", f"exponential:{decay}", "--out", str(tmp_path / "r")]
    line = fails(argv, capsys)
    assert line == (
        "eapo-gym train: error: --acceptance: an exponential schedule's decay lies in (0, 1] "
        f"(constant:0 never accepts); got 'exponential:{decay}'"
    )
    assert not (tmp_path / "r").exists()
