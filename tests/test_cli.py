"""The eapo-gym command as a user drives it: the documentation's examples as printed, and mistakes that
fail fast with one line."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
import torch
from doc_examples import example_block

from eapo_agents.cli import build_parser, main
from eapo_agents.experiments.compare import CompareConfig
from eapo_agents.training.policy import load_policy

FAST_TRAIN = [
    "--problems-per-step", "2", "--group-size", "2", "--train-difficulties", "1", "--eval-difficulties", "1",
    "--eval-problems", "2", "--eval-k", "1", "--tensorboard", "false",
]  # fmt: skip
FAST_EVAL = ["--problems", "2", "--difficulties", "1"]


def run_example_commands(name: str, model: Path) -> list[str]:
    """Each printed command through the CLI, with flags appended that only shrink the run; their output."""
    printed = []
    for line in filter(None, example_block(name).splitlines()):
        words = shlex.split(line)
        assert words[0] == "eapo-gym"
        extra = ["--model", str(model), *FAST_TRAIN] if words[1] == "train" else FAST_EVAL
        main(words[1:] + extra)
        printed.append(line)
    return printed


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_documented_custom_agent_trains_resumes_and_evaluates_with_its_own_flag(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_agents.py").write_text(example_block("my_agents.py"))
    run_example_commands("custom-agent-commands", tiny_model_dir)
    run = tmp_path / "runs" / "reinforce"
    config = json.loads((run / "config.json").read_text())
    assert (config["algo"], config["baseline"], config["steps"]) == ("reinforce", "none", 30)
    assert [row["step"] for row in rows(run) if "step_seconds" in row] == list(range(1, 31))
    output = capsys.readouterr().out
    assert "reinforce: 20 updates" in output and "reinforce: 30 updates" in output  # the summary lines
    evaluation = json.loads((run / "eval_k8.json").read_text())
    assert evaluation["eval/d1/pass_at_k"] >= evaluation["eval/d1/avg_at_k"]  # k = 8 samples were drawn
    start, trained = (
        torch.cat([p.flatten() for p in load_policy(path)[0].parameters()])
        for path in (tiny_model_dir, run / "checkpoint" / "model")
    )
    assert not torch.equal(start, trained)
    assert "ReinforceOptions (--algo reinforce)" in _subparser_help(
        "train"
    ) and "--baseline" in _subparser_help("train")


def test_documented_custom_expert_is_named_from_train_and_from_eval(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_experts.py").write_text(example_block("my_experts.py"))
    run_example_commands("custom-expert-commands", tiny_model_dir)
    run = tmp_path / "runs" / "hinted"
    assert json.loads((run / "config.json").read_text())["experts"] == "hint"
    assert sum(row.get("expert_calls", 0) for row in rows(run)) > 0  # the policy consulted during training
    evaluation = json.loads((run / "eval_k8.json").read_text())
    assert evaluation["eval/expert_calls"] > 0 and evaluation["eval/expert_chars"] > 0
    from eapo_gym.env import ExpertMathEnv
    from eapo_gym.experts import make_expert

    env = ExpertMathEnv(problems="arithmetic", difficulty=1, experts=[make_expert("my_experts:hint")])
    env.reset(seed=0)
    *_, info = env.step("<expert>where do I start?</expert>")
    assert f"Start with {env.problem.solution_steps[0]}" in info["feedback"]


def test_compare_flags_show_their_dataclass_defaults_and_rules(capsys):
    help_text = " ".join(_subparser_help("compare").split())
    for name in ("steps", "seeds", "eval_k", "lr", "out"):
        shown = getattr(CompareConfig(), name)
        shown = ",".join(map(str, shown)) if isinstance(shown, tuple) else shown
        assert f"(default: {shown})" in help_text, name
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--lr", "-1"])
    assert exit_info.value.code == 2
    assert "--lr: expected a float >= 0, got -1.0" in capsys.readouterr().err


def _subparser_help(command: str) -> str:
    parser = build_parser(with_train_options=True)
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return subparsers.choices[command].format_help()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "nope"], "unknown algorithm 'nope'; choose one of adaptive_hints, base, distill"),
        (["--critic", "separate"], "critic: not an option of grpo (options of ppo)"),
        (
            ["--loss-aggregation", "mean"],
            "invalid choice: 'mean' (choose from 'token', 'sequence', 'constant')",
        ),
        (["--experts", "oracle"], "unknown expert 'oracle'; choose reference, symbolic"),
        (["--experts", "no_such_module:fn"], "cannot import 'fn' from 'no_such_module'"),
        (["--problems", "missing.jsonl"], "missing.jsonl"),
        (["--algo", "eapo", "--acceptance", "sqrt"], "acceptance: a schedule is one of constant, inverse"),
        (["--plugin", "missing_plugin.py"], "--plugin missing_plugin.py: FileNotFoundError"),
        (["--steps", "many"], "argument --steps: invalid int value: 'many'"),
    ],
)
def test_a_mistake_fails_with_one_line_before_any_model_loads_or_file_is_written(
    argv, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("eapo_agents.training.loop.load_policy", _never)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", "run", *argv])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists()


def _never(*args, **kwargs):
    raise AssertionError("a model was loaded")


def test_unknown_yaml_keys_name_their_owner(tmp_path, capsys):
    (tmp_path / "settings.yaml").write_text("gae_lambda: 0.9\nsteps: 3\n")
    with pytest.raises(SystemExit):
        main(
            [
                "train",
                "--algo",
                "grpo",
                "--config",
                str(tmp_path / "settings.yaml"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
    assert "gae_lambda: not an option of grpo (options of ppo)" in capsys.readouterr().err


def test_resume_is_a_bare_flag_that_continues_with_the_runs_settings(tiny_model_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    main(["train", "--algo", "grpo", "--model", str(tiny_model_dir), "--steps", "1", "--lr", "0.001",
          "--clip-high", "0.3", "--out", out, *FAST_TRAIN])  # fmt: skip
    main(["train", "--resume", "--steps", "2", "--out", out])
    config = json.loads((Path(out) / "config.json").read_text())
    assert (config["algo"], config["lr"], config["clip_high"], config["steps"]) == ("grpo", 0.001, 0.3, 2)
    assert [row["step"] for row in rows(Path(out)) if "step_seconds" in row] == [1, 2]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--resume", "--algo", "ppo", "--out", out])
    assert "--algo ppo conflicts with the run in" in capsys.readouterr().err
    assert json.loads((Path(out) / "config.json").read_text()) == config


def test_train_help_groups_each_algorithms_options_and_every_flag_has_help():
    text = _subparser_help("train")
    groups = (
        "PolicyGradientOptions (--algo adaptive_hints, eapo, grpo, guide, hints, luffy, ppo)",
        "ScheduledOptions (--algo eapo, hints)",
        "PPOOptions (--algo ppo)",
        "EAPOOptions (--algo eapo)",
        "SFTOptions (--algo distill, sft)",
        "rollouts settings",
    )
    assert all(group in text for group in groups)
    parser = build_parser(with_train_options=True)
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    assert all(action.help for action in train._actions if action.option_strings)


def test_plugins_load_from_a_module_or_a_file_on_every_subcommand(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "marker_by_file.py").write_text("LOADED = True\n")
    (tmp_path / "marker_by_module.py").write_text("LOADED = True\n")
    main(
        [
            "demo",
            "--episodes",
            "1",
            "--plugin",
            str(tmp_path / "marker_by_file.py"),
            "--plugin",
            "marker_by_module",
        ]
    )
    assert sys.modules["marker_by_file"].LOADED and sys.modules["marker_by_module"].LOADED
    for argv in (["compare", "--methods", "nope"], ["eval", "--checkpoint", str(tmp_path / "nothing")]):
        del sys.modules["marker_by_file"]
        with pytest.raises(SystemExit):
            main([*argv, "--plugin", str(tmp_path / "marker_by_file.py")])
        assert sys.modules["marker_by_file"].LOADED


def test_demo_works_on_a_file_without_levels(tmp_path, capsys):
    records = [
        {"question": f"{a}+1=?", "answer": str(a + 1), "solution": [f"{a}+1={a + 1}"]} for a in range(30)
    ]
    path = tmp_path / "plain.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    main(["demo", "--problems", str(path), "--episodes", "4", "--acceptance", "1.0"])
    assert "with experts" in capsys.readouterr().out


def test_eval_works_on_a_plain_model_directory(tiny_model_dir, tmp_path):
    main(
        [
            "eval",
            "--checkpoint",
            str(tiny_model_dir),
            "--k",
            "1",
            *FAST_EVAL,
            "--json",
            str(tmp_path / "m.json"),
        ]
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"eval/avg_at_k", "eval/d1/avg_at_k", "eval/consult_rate"} <= set(metrics)


def test_eval_reports_locked_or_declined_consultation(tiny_model_dir, tmp_path):
    rates = {}
    for consult in ("locked", "declined"):
        out = tmp_path / f"{consult}.json"
        flags = ["--k", "4", "--problems", "16", "--difficulties", "2", "--consult", consult]
        main(["eval", "--checkpoint", str(tiny_model_dir), *flags, "--json", str(out)])
        rates[consult] = json.loads(out.read_text())["eval/consult_rate"]
    assert rates["locked"] == 0.0 and rates["declined"] > 0.0
