"""Smoke runs of the speed benchmarks at tiny settings: the shape of what they write, no timing claims."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import engines, grpo_vs_trl, rollout_speed, step_times


def _positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


def test_rollout_speed_writes_its_results(tmp_path):
    rollout_speed.run_benchmark(batch=2, new_tokens=4, repeats=1, out_dir=tmp_path)
    result = json.loads((tmp_path / "rollout_speed.json").read_text())
    assert (tmp_path / "rollout_speed.md").read_text().startswith("# Rollout speed")
    assert {
        "command",
        "args",
        "idle_wait",
        "machine",
        "machine_after",
        "rows",
        "ratio_ours_over_generate",
    } <= set(result)
    assert {"torch", "torch_threads", "uptime", "load_average"} <= set(result["machine"])
    for name in ("ours", "generate"):
        row = result["rows"][name]
        assert row["tokens_per_run"] == 2 * 4  # exactly new_tokens per row, no early stop
        assert _positive(row["tokens_per_s"]) and _positive(row["peak_rss_mb"])
        assert "rollout_rss_mb" in row and row["other_cpu_share"] >= 0
    for name in ("ours_eos", "generate_eos"):  # rows end at EOS: at most new_tokens each
        assert 0 < result["rows"][name]["tokens_per_run"] <= 2 * 4
    assert _positive(result["ratio_at_eos"])
    multi = result["rows"]["multi_turn"]
    assert _positive(multi["tokens_per_s"]) and multi["turns_per_episode"] >= 1
    assert _positive(result["ratio_ours_over_generate"])


def test_grpo_vs_trl_writes_its_results(tmp_path):
    grpo_vs_trl.run_benchmark(setups=[(2, 2)], completion_tokens=4, steps=1, warmup=0, out_dir=tmp_path)
    result = json.loads((tmp_path / "grpo_vs_trl.json").read_text())
    assert (tmp_path / "grpo_vs_trl.md").exists()
    assert {"command", "args", "idle_wait", "machine", "machine_after", "setups", "differences"} <= set(
        result
    )
    setup = result["setups"]["2x2"]
    for name in ("ours", "trl"):
        row = setup[name]
        assert _positive(row["step_s"]) and _positive(row["peak_rss_mb"])
        assert row["completion_tokens_per_step"] == 2 * 2 * 4  # both forced to the exact length
        assert "train_rss_mb" in row
        assert 0 < row["rollout_s"] < row["step_s"]  # the rollout is timed inside the step
        assert row["update_s"] > 0
    assert setup["ours"]["single_turn"] is True
    assert _positive(setup["ratio_ours_over_trl"]) and setup["other_cpu_share"] >= 0


def test_step_times_splits_each_update(tmp_path, tiny_model_dir):
    result = step_times.run_benchmark(
        ["grpo", "sft"],
        steps=2,
        difficulty=1,
        problems=2,
        group=2,
        model=str(tiny_model_dir),
        out_dir=tmp_path,
    )
    assert (tmp_path / "step_times.md").read_text().startswith("# Step time per algorithm")
    grpo, sft = result["algorithms"]["grpo"], result["algorithms"]["sft"]
    assert 0 < grpo["rollout_s"] < grpo["step_s"] and grpo["rest_s"] > 0
    assert grpo["turns_per_episode"] >= 1 and grpo["policy_tokens"] > 0
    assert _positive(sft["step_s"]) and sft["rollout_s"] is None  # SFT plays no rollouts


def test_engines_train_both_engines_and_evaluate_them_alike(tmp_path, tiny_model_dir):
    result = engines.run_benchmark(["eapo"], steps=2, seed=0, model=str(tiny_model_dir), eval_problems=2,
                                   out_dir=tmp_path)  # fmt: skip
    assert (tmp_path / "engines.md").read_text().startswith("# Our trainer and TRL")
    native, trl = result["runs"]["eapo/native"], result["runs"]["eapo/trl"]
    assert [step for step, _ in native["curve"]] == [step for step, _ in trl["curve"]] == [2]
    assert 0 <= result["start_avg_at_k"] <= 1 and (tmp_path / "engines.json").exists()
    assert _positive(native["step_s"]) and _positive(trl["step_s"])


def test_expert_round_simulated_turn_is_measured_for_both_vector_envs():
    from benchmarks.expert_round import measure_simulated_round

    result = measure_simulated_round(episodes=4, latency=0.01, repeats=1)
    turn = result["turn_s"]
    assert result["native_over_single_call"] == pytest.approx(turn["native"] / turn["single_call"])
    assert result["sync_over_single_call"] == pytest.approx(turn["sync"] / turn["single_call"])
    assert turn["single_call"] >= 0.01  # the expert really slept


def test_gpu_check_runs_every_path_at_a_tiny_size_on_the_cpu(tmp_path):
    from benchmarks import gpu_check

    gpu_check.main(["--device", "cpu", "--models", "tiny", "--problems", "2", "--group", "2",
                    "--updates", "2", "--new-tokens", "4", "--micro-batch-tokens", "2048",
                    "--out", str(tmp_path / "runs"), "--results", str(tmp_path)])  # fmt: skip
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["device"] == "cpu" and result["dtype"] == "bfloat16" and _positive(result["peak_tflops"])
    assert (tmp_path / "gpu_check.md").read_text().startswith("# GPU check on cpu")
    model = result["models"]["tiny"]
    assert model["shape"] == {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128}
    for path in gpu_check.PATHS:
        row = model["paths"][path]
        assert "error" not in row, row
        for name in ("rollout_tokens_per_s", "update_tokens_per_s", "step_tokens_per_s", "update_mfu"):
            assert _positive(row[name]), (path, name)
        assert row["sequence_tokens_per_update"] > row["policy_tokens_per_update"] > 0  # prompts count too
        assert row["peak_memory_gb"] is None  # GPU memory only
    decode = model["decode"]
    assert _positive(decode["ours_tokens_per_s"]) and _positive(decode["generate_static_tokens_per_s"])
    assert decode["generate_compiled"] is False  # transformers compiles the static cache on GPUs only


def test_multi_turn_forces_every_episode_to_t_turns_of_the_same_length():
    from benchmarks import multi_turn
    from eapo_agents.rollout.backend import SamplingConfig
    from eapo_agents.rollout.play import play_episodes
    from eapo_agents.rollout.sampling import LocalBackend

    model, tokenizer, envs = multi_turn.setup(3, "cpu", None, max_turns=4)
    vocab = model.get_output_embeddings().weight.shape[0]
    backend = LocalBackend(
        model, tokenizer, envs.protocol, SamplingConfig(max_new_tokens=25), torch.Generator()
    )
    for turns in (1, 4):
        backend.query_lock = multi_turn.ForcedTurns(tokenizer, envs.protocol, turns, 24, vocab)
        episodes = play_episodes(backend, tokenizer, envs, [0, 1, 2], max_context=2048, lock_queries=True)
        assert [e.info["turns"] for e in episodes] == [turns] * 3
        assert [e.policy_token_count for e in episodes] == [24 * turns] * 3
        assert all(
            e.info["consults"] == 3 * (turns - 1) for e in episodes
        )  # K = 3 in every turn but the last
    with pytest.raises(ValueError, match="exactly 5 tokens"):
        multi_turn.ForcedTurns(tokenizer, envs.protocol, 2, 5, vocab)  # three query tags need more


def test_multi_turn_benchmark_writes_both_rates_per_turn_count():
    from benchmarks import multi_turn

    result = multi_turn.run_benchmark([1, 2], 2, 24, 1, "cpu", None, 0.0)
    rows = result["rows"]
    assert set(rows) == {"1", "2"} and rows["1"]["processed_ratio"] == 1.0
    assert rows["2"]["turns_per_episode"] == 2.0
    for row in rows.values():
        assert (
            _positive(row["policy_tokens_per_s"])
            and row["processed_tokens_per_s"] > row["policy_tokens_per_s"]
        )
    assert "Target: at T = 4" not in multi_turn.markdown(result)  # T = 4 was not run
