"""Every bad input gets one clear line (exit status 2) and loses nothing. ``TABLE`` is the bad-input table:
each row a command, its exit status and the line it prints (the README's troubleshooting section points here);
then every bound of every option at its edge, and the checks behind the rows. Validation failures happen
before any model loads or any file is written."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from eapo_agents.cli import build_parser, main, train_config, unlearned_levels_note
from eapo_agents.experiments.compare import CompareConfig, job_config, job_start, method_by_name
from eapo_agents.experiments.presets import tiny_policy_path
from eapo_agents.experiments.report import markdown_table, verdicts
from eapo_agents.training.config import SettingError, TrainConfig, checked_value
from eapo_agents.training.loop import train
from eapo_agents.training.registry import agent_class, agent_names
from eapo_agents.training.run import (
    CHECKPOINT,
    STATE_FILE,
    checkpoint_state,
    clear_run,
    run_settings,
    stored_settings,
)
from eapo_agents.training.stopping import ExpertsFailing, FailingExperts
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


# ---- the table: one row per bad input: the command, its exit status and the one line it prints ---------
#
# Placeholders: {tmp} a fresh directory; {run} a copy of a finished 2-update run in it; {model} the tiny
# policy; {file} an existing file. Each line follows "eapo-gym COMMAND: "; one ending in "..." is a prefix.
# ``files`` are written under {tmp} first; ``missing`` hides an installed module. Rows with exit status 2
# load no model and leave everything under {tmp} as it was (and create nothing there).


@dataclass(frozen=True)
class Row:
    argv: str
    code: int
    line: str
    files: dict[str, str] = field(default_factory=dict)
    missing: str = ""


NO_CUDA = "this machine's torch " + (
    "is built without CUDA" if torch.version.cuda is None else "sees no CUDA device"
)
TABLE = {
    "steps 0": Row("train --steps 0 --out {tmp}/r", 2, "error: --steps: expected an integer >= 1, got 0"),
    "steps -1": Row("train --steps -1 --out {tmp}/r", 2, "error: --steps: expected an integer >= 1, got -1"),
    **{
        f"{algo} group of one": Row(
            f"train --algo {algo} --group-size 1 --steps 2 --out {{tmp}}/r",
            2,
            f"error: --group-size: expected an integer >= 2 for --algo {algo} (advantages are relative to "
            "the group), got 1",
        )
        for algo in ("grpo", "eapo")
    },
    "config value a list": Row(
        "train --config {tmp}/bad.yaml --out {tmp}/r",
        2,
        "error: --config {tmp}/bad.yaml: lr: expected a float > 0, got [1, 2]",
        {"bad.yaml": "lr: [1, 2]\n"},
    ),
    "config: the first bad value": Row(
        "train --config {tmp}/bad.yaml --out {tmp}/r",
        2,
        "error: --config {tmp}/bad.yaml: steps: expected an integer >= 1, got 'many'",
        {"bad.yaml": "steps: many\nlr: [1, 2]\n"},
    ),
    "config value text": Row(
        "train --config {tmp}/c.yaml --out {tmp}/r",
        2,
        "error: --config {tmp}/c.yaml: lr: expected a float > 0, got 'fast'",
        {"c.yaml": 'lr: "fast"\n'},
    ),
    "config value a fraction": Row(
        "train --config {tmp}/c.yaml --out {tmp}/r",
        2,
        "error: --config {tmp}/c.yaml: steps: expected an integer >= 1, got 2.7",
        {"c.yaml": "steps: 2.7\n"},
    ),
    "no model directory": Row(
        "train --model /nope --out {tmp}/r", 2, "error: --model /nope: no such directory"
    ),
    "no model directory, trl": Row(
        "train --engine trl --model /nope --out {tmp}/r", 2, "error: --model /nope: no such directory"
    ),
    "not a model directory": Row(
        "train --model {tmp} --out {tmp}/r", 2, "error: --model {tmp}: not a model directory (no config.json)"
    ),
    "resume without a run": Row(
        "train --resume --out {tmp}", 2, "error: --resume: {tmp} has no checkpoint to resume..."
    ),
    "expert URL": Row(
        "train --experts openai:foo@notaurl --out {tmp}/r",
        2,
        "error: --experts: expert spec 'foo@notaurl': the server URL must start with http:// or https://",
    ),
    "float16 through trl on the CPU": Row(
        "train --engine trl --algo grpo --device cpu --dtype float16 --out {tmp}/r",
        2,
        "error: --dtype float16: needs CUDA with --engine trl (TRL's fp16 mixed precision); use bfloat16 or "
        "float32 on the CPU",
    ),
    "final turns above max turns": Row(
        "train --max-turns 3 --final-turns 5 --out {tmp}/r",
        2,
        "error: --final-turns: expected at most --max-turns (3), got 5",
    ),
    **{
        f"exponential decay {decay}": Row(
            f"train --algo eapo --acceptance exponential:{decay} --out {{tmp}}/r",
            2,
            "error: --acceptance: an exponential schedule's decay lies in (0, 1] (constant:0 never accepts); "
            f"got 'exponential:{decay}'",
        )
        for decay in ("0", "-0.5", "1.5")
    },
    "demo episodes 0": Row(
        "demo --episodes 0", 2, "error: argument --episodes: expected an integer >= 1, got '0'"
    ),
    "demo seed -1": Row("demo --seed -1", 2, "error: argument --seed: expected an integer >= 0, got '-1'"),
    "compare steps 0": Row("compare --steps 0", 2, "error: --steps: expected an integer >= 1, got 0"),
    "compare workers 0": Row("compare --workers 0", 2, "error: --workers: expected an integer >= 1, got 0"),
    "compare method": Row("compare --methods nope", 2, "error: --methods: unknown method 'nope'; choose..."),
    "compare device": Row(
        "compare --device gpu", 2, "error: --device: expected auto, cpu, cuda or cuda:N, got 'gpu'"
    ),
    **{
        f"{command} dtype": Row(
            f"{command} --dtype bf16{' --checkpoint x' * (command == 'eval')}",
            2,
            "error: argument --dtype: invalid choice: 'bf16' (choose from 'auto', 'bfloat16'...",
        )
        for command in ("eval", "compare")
    },
    "eval k 0": Row("eval --checkpoint {model} --k 0", 2, "error: --k: expected an integer >= 1, got 0"),
    "eval no checkpoint": Row("eval --checkpoint /nope", 2, "error: --checkpoint /nope: no such directory"),
    # issue 29: a finished update is never lost without being asked
    "train into a run": Row(
        "train --steps 1 --out {run}",
        2,
        "error: --out {run}: holds a run of 2 finished updates; --resume continues it, --overwrite deletes "
        "it and starts afresh",
    ),
    "compare into a run with other settings": Row(
        "compare --methods grpo --seeds 0 --steps 10 --train-levels 1 --out {tmp}/cmp",
        2,
        "error: --out: {tmp}/cmp/grpo/seed0 holds a run with other settings (steps 48, not 10); --overwrite "
        "retrains it, or choose another --out",
    ),
    **{
        f"{command} on a missing device": Row(
            f"{command} --device cuda{' --checkpoint {run}' * (command == 'eval')} --out {{tmp}}/r",
            2,
            f"error: --device cuda: {NO_CUDA}; use --device cpu or auto",
        )
        for command in ("train", "eval", "compare")
    },
    "resume on a missing device": Row(
        "train --resume --steps 3 --device cuda --out {run}",
        2,
        f"error: --device cuda: {NO_CUDA}; use --device cpu or auto",
    ),
    "resume changing a setting": Row(
        "train --resume --steps 3 --lr 0.1 --out {run}",
        2,
        "error: --lr 0.1: the run in {run} has 0.0002, and a resume keeps a run's settings (it may change "
        "--steps and --device only; --overwrite starts afresh)",
    ),
    **{
        f"resume a finished run{steps}": Row(
            f"train --resume{steps} --out {{run}}",
            2,
            "error: --resume: the run is already finished (2 updates); pass --steps M > 2 to continue",
        )
        for steps in ("", " --steps 1")
    },
    "out is a file": Row("train --out {file}", 2, "error: --out {file}: is a file, not a directory"),
    "compare out is a file": Row(
        "compare --methods grpo --seeds 0 --train-levels 1 --out {file}",
        2,
        "error: --out {file}: is a file, not a directory",
    ),
    **{
        f"{command} without the train extra": Row(
            f"{command} --out {{tmp}}/r",
            2,
            f"error: needs the train extra (missing: {module}); install it with "
            'pip install "eapo-gym[train]"',
            missing=module,
        )
        for command, module in (("train", "tensorboard"), ("compare", "matplotlib"))
    },
    **{
        f"{command} problems file": Row(
            f"{command} --problems /nonexistent.jsonl{' --out {tmp}/r' * (command == 'train')}",
            2,
            "error: --problems /nonexistent.jsonl: no such file",
        )
        for command in ("train", "demo")
    },
    # a run that starts, then stops with one line (status 1)
    **{
        f"experts that never answer ({engine})": Row(
            f"train --engine {engine} --model {{model}} --algo eapo --steps 3 --experts math:sqrt "
            "--expert-failure-stop 1 --out {tmp}/r " + " ".join(FAST),
            1,
            "stopped: every expert call failed in the first update that made calls (math:sqrt: 2 failed "
            "(TypeError: must be real number, not ExpertQuery)); check the experts, or pass "
            "--expert-failure-stop 0 to train on without them",
        )
        for engine in ("native", "trl")
    },
}


@pytest.mark.parametrize("name", TABLE)
def test_bad_input_gets_one_line_and_loses_nothing(
    name, finished_run, tiny_model_dir, tmp_path, capsys, monkeypatch
):
    row = TABLE[name]
    for relative, text in row.files.items():
        (tmp_path / relative).write_text(text)
    run = copy_of(finished_run, tmp_path)
    (tmp_path / "file").write_text("not a directory")
    if name == "compare into a run with other settings":
        write_compare_run(tmp_path / "cmp", steps=48)
    places = {"tmp": tmp_path, "run": run, "model": tiny_model_dir, "file": tmp_path / "file"}
    if row.missing:
        find_spec = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda n, *a: None if n == row.missing else find_spec(n, *a)
        )
    if row.code == 2:
        for module in ("eapo_agents.training.loop", "eapo_agents.training.policy"):
            monkeypatch.setattr(f"{module}.load_policy", never_loaded)
    before, paths = hashes(tmp_path), sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        main(shlex.split(row.argv.format(**places)))
    error = capsys.readouterr().err
    assert exit_info.value.code == row.code, error
    line = error.strip().splitlines()[-1]
    assert "Traceback" not in error and (row.code != 2 or error.count("\n") == 1), error
    expected = f"eapo-gym {row.argv.split()[0]}: {row.line.format(**places)}"
    assert line.startswith(expected[:-3]) if expected.endswith("...") else line == expected, line
    if row.code == 2:
        assert hashes(tmp_path) == before and sorted(tmp_path.rglob("*")) == paths


def never_loaded(*args, **kwargs):
    raise AssertionError("a model was loaded")


def write_compare_run(out: Path, steps: int) -> None:
    """``out/grpo/seed0``: the config.json of compare's grpo run with ``steps`` updates (the table's
    ``DIFFERENT_COMPARE`` asks for 10)."""
    compare = CompareConfig.quick_preset(methods=("grpo",), train_levels=(1,), steps=steps, out=str(out))
    config = job_config(method_by_name("grpo"), 0, compare, (1,), tiny_policy_path())  # as compare makes it
    Path(config.out).mkdir(parents=True)
    (Path(config.out) / "config.json").write_text(json.dumps(stored_settings(run_settings(config)), indent=2))


# ---- every bound of every option, at its edge -------------------------------------------------------------


def bounded_options() -> list[tuple[str, dataclasses.Field]]:
    """(owner, field) for every option with a bound: shared settings, each algorithm's options, compare's."""
    owners = {"TrainConfig": TrainConfig, "CompareConfig": CompareConfig}
    owners |= {f"{name} options": agent_class(name).Options for name in agent_names()}
    return [
        (owner, spec)
        for owner, cls in owners.items()
        for spec in dataclasses.fields(cls)
        if any(bound is not None for bound in spec.metadata.get("bounds", ()))
    ]


def edges(spec: dataclasses.Field) -> list[tuple[Any, bool]]:
    """Values at each bound of ``spec`` and just past it, with whether each must be accepted: an inclusive
    bound accepts itself, an exclusive one rejects itself and accepts the nearest value inside."""
    at_least, above, at_most = spec.metadata["bounds"]
    integer = type(spec.default) in (int, tuple)

    def inside(value: float, direction: float) -> float:
        return value + direction if integer else math.nextafter(value, direction * math.inf)

    cases = []
    if at_least is not None:
        cases += [(at_least, True), (inside(at_least, -1), False)]
    if above is not None:
        cases += [(above, False), (inside(above, 1), True)]
    if at_most is not None:
        cases += [(at_most, True), (inside(at_most, 1), False)]
    return [((int(v),) if type(spec.default) is tuple else type(spec.default)(v), ok) for v, ok in cases]


@pytest.mark.parametrize(("owner", "spec"), bounded_options(), ids=lambda x: getattr(x, "name", x))
def test_every_bound_holds_at_its_edge(owner, spec):
    for value, accepted in edges(spec):
        if accepted:
            assert checked_value(spec, value) == value, (owner, spec.name, value)
        else:
            with pytest.raises(SettingError, match=rf"^{spec.name}: expected "):
                checked_value(spec, value)


def test_the_bounds_are_all_covered():
    names = {spec.name for _, spec in bounded_options()}
    assert {"lr", "top_p", "steps", "expert_noise", "expert_failure_share", "acceptance_scale"} <= names
    assert any(owner.endswith(" options") for owner, _ in bounded_options())  # the algorithms' own


# ---- the checks behind the rows -------------------------------------------------------------------------


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


def test_failing_experts_are_named_per_update_and_stop_a_run_they_never_answered():
    watch = FailingExperts(share=0.5, stop_after=2)
    assert watch.check(1, calls=0, failures=0, failed_by={}) == []  # no calls: neither counts nor reports
    lines = watch.check(2, calls=4, failures=4, failed_by={"down": (4, "ConnectionError: refused")})
    assert lines == ["update 2: 4 of 4 expert calls failed; expert down: 4 failed (ConnectionError: refused)"]
    with pytest.raises(
        ExpertsFailing, match=r"in the first 2 updates that made calls \(down: 2 failed \(Conn"
    ):
        watch.check(3, calls=2, failures=2, failed_by={"down": (6, "ConnectionError: refused")})
    tolerant = FailingExperts(share=0.5, stop_after=0)  # --expert-failure-stop 0: report, never stop
    for step in range(1, 6):
        assert len(tolerant.check(step, 2, 2, {"down": (2 * step, "refused")})) == 1
    once_answered = FailingExperts(share=0.5, stop_after=2)
    assert once_answered.check(1, 4, 2, {"down": (2, "refused")}) == []  # half failed: not more than half
    for step in (2, 3, 4):  # one update with an answer ends the watch for experts that never answer
        assert once_answered.check(step, 4, 4, {"down": (2 + 4 * (step - 1), "refused")})


def test_a_torn_metrics_line_is_dropped_and_the_resume_replays_it(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--model", str(tiny_model_dir), "--steps", "1", "--out", str(out), *FAST])
    with (out / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 2, "loss": 0.12')  # a crash while writing update 2's row
    main(["train", "--resume", "--steps", "2", "--out", str(out)])
    assert f"{out / 'metrics.jsonl'}: dropped a torn last line" in capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "step_seconds" in row] == [1, 2] and "loss" in rows[-1]
    (out / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')  # damaged, not torn
    line = fails(["train", "--resume", "--steps", "3", "--out", str(out)], capsys)
    assert (
        line
        == f"eapo-gym train: error: --resume: {out / 'metrics.jsonl'} line 2 is damaged (not JSON); left as "
        "it is"
    )


def test_config_json_is_written_only_once_the_model_loaded(small_config, monkeypatch):
    def fails_to_load(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr("eapo_agents.training.loop.load_policy", fails_to_load)
    with pytest.raises(MemoryError):
        train(small_config)
    assert not Path(small_config.out).exists()


def test_the_device_and_its_dtype_are_checked_with_the_settings(fake_gpus):
    fake_gpus(1, bf16=False)
    with pytest.raises(
        SettingError, match=r"^device cuda:1: this machine has 1 CUDA device\(s\), cuda:0 to cuda:0"
    ):
        TrainConfig(device="cuda:1", dtype="float32")
    for dtype in ("bfloat16", "auto"):
        with pytest.raises(SettingError, match=rf"^dtype {dtype}: .*this GPU cannot compute in bfloat16"):
            TrainConfig(device="cuda", dtype=dtype)
    assert TrainConfig(device="cuda:0", dtype="float16").device == "cuda:0"
    assert TrainConfig(device="cpu", dtype="bfloat16").dtype == "bfloat16"


def test_overwrite_deletes_the_run_and_nothing_else(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    (run / "notes.txt").write_text("mine")
    clear_run(run)
    assert [path.name for path in run.iterdir()] == ["notes.txt"]


def test_compare_resumes_its_own_runs_and_refuses_others_unless_overwrite(tmp_path):
    compare = CompareConfig.quick_preset(methods=("grpo",), train_levels=(1,), steps=10, out=str(tmp_path))
    config = job_config(method_by_name("grpo"), 0, compare, (1,), tiny_policy_path())
    assert job_start(config, overwrite=False) == config  # nothing there
    write_compare_run(tmp_path, steps=10)  # its own settings, no finished update: started afresh over it
    assert job_start(config, overwrite=False).overwrite
    (Path(config.out) / "config.json").write_text(
        json.dumps({**json.loads((Path(config.out) / "config.json").read_text()), "device": "cuda"})
    )
    assert job_start(config, overwrite=False).overwrite  # the device is the machine's, not the run's
    saved = json.loads((Path(config.out) / "config.json").read_text())
    del saved["expert_failure_stop"]  # a run from before the setting existed: counted at its default
    (Path(config.out) / "config.json").write_text(json.dumps(saved))
    assert job_start(config, overwrite=False).overwrite
    shutil.rmtree(config.out)
    write_compare_run(tmp_path, steps=48)
    with pytest.raises(SettingError, match=r"holds a run with other settings \(steps 48, not 10\)"):
        job_start(config, overwrite=False)
    assert job_start(config, overwrite=True).overwrite


def test_eval_of_a_model_directory_never_writes_into_it(tiny_model_dir, tmp_path, capsys):
    before = hashes(tiny_model_dir)
    flags = ["--k", "1", "--problems", "2", "--difficulties", "1", "--device", "cpu", "--dtype", "float32"]
    main(["eval", "--checkpoint", str(tiny_model_dir), *flags])
    assert "(not written: " in capsys.readouterr().out
    main(["eval", "--checkpoint", str(tiny_model_dir), *flags, "--out", str(tmp_path / "results")])
    assert hashes(tiny_model_dir) == before
    assert "eval/avg_at_k" in json.loads((tmp_path / "results" / "eval_k1.json").read_text())


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
            "eapo-gym train: error: --resume: the run is already finished (2 updates); pass --steps M > 2 "
            "to continue"
        )
    state = checkpoint_state(run)
    torch.save({**state, "step": 1}, run / CHECKPOINT / STATE_FILE)  # a run stopped after update 1 of 2
    line = fails(["train", "--resume", "--steps", "1", "--out", str(run)], capsys)
    assert line == (
        f"eapo-gym train: error: --steps: expected more than 1, the update {run}'s checkpoint holds (fewer "
        "would drop finished updates), got 1"
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
    from eapo_agents.training.policy import load_policy
    from eapo_agents.training.run import save_checkpoint
    from eapo_agents.training.stopping import NonFiniteError

    agent = BaseAgent(*load_policy(small_config.model), small_config)
    with torch.no_grad():
        next(agent.model.parameters()).fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="update 5 left non-finite weights"):
        save_checkpoint(tmp_path, agent, 5, small_config)
    assert list(tmp_path.iterdir()) == []
