"""One contract between the engines: what each honours is declared and the rest refused before any work,
both log the same metric keys for the same algorithm, and TRL is used through its public API only."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from eapo_agents.engines import trl_train
from eapo_agents.engines.contract import (
    NATIVE,
    NATIVE_ONLY_METRICS,
    TRL,
    TRL_METRIC_PREFIX,
    check_engine_settings,
)
from eapo_agents.training import loop
from eapo_agents.training.config import SettingError, TrainConfig, shared_fields
from eapo_agents.training.registry import agent_class

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    path for folder in ("agents", "benchmarks", "tests") for path in (ROOT / folder).rglob("*.py")
)


def test_the_declarations_name_real_settings_and_cover_every_shared_one():
    shared = {spec.name for spec in shared_fields()}
    assert TRL.fields <= shared and NATIVE.fields <= shared
    assert TRL.fields | NATIVE.fields == shared  # each setting is honoured by some engine
    options = {spec.name for algo in TRL.algorithms for spec in dataclasses.fields(agent_class(algo).Options)}
    assert TRL.options <= options


@pytest.mark.parametrize("engine", ["native", "trl"])
def test_problems_per_step_is_global_so_it_must_split_over_the_processes(engine):
    config = TrainConfig(engine=engine, algo="grpo", problems_per_step=3, save_every=TrainConfig.save_every)
    check_engine_settings(config, processes=1)
    check_engine_settings(config.replace(problems_per_step=4), processes=2)
    with pytest.raises(SettingError, match="expected a multiple of the 2 processes"):
        check_engine_settings(config, processes=2)


def test_a_gpu_index_is_refused_where_accelerate_places_the_processes(fake_gpus):
    fake_gpus(2)
    config = TrainConfig(device="cuda:1")
    check_engine_settings(config, processes=1)  # ours, alone: honoured
    with pytest.raises(SettingError, match="CUDA_VISIBLE_DEVICES"):
        check_engine_settings(config, processes=2)
    with pytest.raises(SettingError, match="CUDA_VISIBLE_DEVICES"):
        check_engine_settings(config.replace(engine="trl", save_every=TrainConfig.save_every), processes=1)


def logged_keys(config: TrainConfig) -> set[str]:
    train = trl_train.train if config.engine == "trl" else loop.train
    train(config, progress=False)
    rows = (Path(config.out) / "metrics.jsonl").read_text().splitlines()
    return set().union(*(json.loads(row) for row in rows))


@pytest.mark.parametrize("algo", ["grpo", "eapo"])
def test_both_engines_log_the_same_metric_keys(algo, small_config, tmp_path):
    """One update of each engine (an evaluation included): the same keys but the declared engine-only ones;
    EAPO's group metrics on both."""
    config = small_config.replace(
        algo=algo, steps=1, group_size=2, train_difficulties=(2,), eval_problems=1, eval_k=1,
        save_every=TrainConfig.save_every,
    )  # fmt: skip
    native = logged_keys(config.replace(out=str(tmp_path / "native")))
    trl = logged_keys(config.replace(engine="trl", out=str(tmp_path / "trl")))
    assert native - NATIVE_ONLY_METRICS == {key for key in trl if not key.startswith(TRL_METRIC_PREFIX)}
    assert {"all_fail_groups", "loss", "eval/avg_at_k"} <= native
    if algo == "eapo":
        assert {"helped_episodes", "declined_episodes", "rescued_groups"} <= native


def private_trl_uses(source: str) -> set[tuple[int, str]]:
    """(line, name) where ``source`` imports an underscore-prefixed name of ``trl``, or reaches an
    underscore-prefixed attribute (by ``.``, or by name as in ``getattr`` or ``monkeypatch.setattr``)
    of an object whose expression mentions a trainer or TRL."""

    def private(name: str) -> bool:
        return name.startswith("_") and not name.endswith("__")

    def trl_like(node: ast.AST) -> bool:
        text = ast.unparse(node).lower()
        return "trainer" in text or "trl" in text

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "trl":
            names = [*node.module.split("."), *(alias.name for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [
                part
                for alias in node.names
                if alias.name.split(".")[0] == "trl"
                for part in alias.name.split(".")
            ]
        elif isinstance(node, ast.Attribute) and trl_like(node.value):
            names = [node.attr]
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and trl_like(node.args[0]):
            name = node.args[1]
            names = [name.value] if isinstance(name, ast.Constant) and isinstance(name.value, str) else []
        else:
            continue
        found |= {(node.lineno, name) for name in names if private(name)}
    return found


def test_no_private_trl_name_is_used_anywhere():
    uses = {
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in SOURCES
        for line, name in private_trl_uses(path.read_text())
    }
    assert uses == set()


def test_the_check_sees_private_trl_names():
    source = (
        "from trl.trainer.utils import _helper\n"
        "def turn(trainer):\n"
        "    return trainer._generate_single_turn([[1]], None, {}, 1), getattr(trainer, '_logs')\n"
    )
    assert private_trl_uses(source) == {(1, "_helper"), (3, "_generate_single_turn"), (3, "_logs")}
