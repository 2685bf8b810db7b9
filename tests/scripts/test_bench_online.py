"""scripts/bench_online.py: flags, the grid of online sweep points and their order, a tiny two-worker run through
pbrl sweep + report, its IQM table, and a second call that skips the finished runs."""

from __future__ import annotations

import json
import re

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_online")


def test_flags_and_defaults(bench):
    a = bench.parse_args([])
    assert a.task == "mujoco/HalfCheetah-v5" and a.steps == 100_000 and a.labels == 500 and a.seeds == 3
    assert a.agents == ["sac", "pebble", "qpa", "pref_ppo"] and a.score == "return"
    assert a.learner_kwargs == bench.BENCH_SAC_KWARGS and a.per_session == 50 and a.workers == 2
    assert a.out == "benchmarks/bench_online_sweep"  # the old script's results stay in benchmarks/bench_online
    assert bench.parse_args(["--paper-sizes"]).learner_kwargs == {}
    assert bench.parse_args(["--learner-kwargs", '{"batch_size": 64}']).learner_kwargs == {"batch_size": 64}
    assert bench.parse_args(["--task", "metaworld/reach-v3"]).score == "success"
    for bad in (["--agents", "sac", "ddpg"], ["--steps", "0"], ["--workers", "0"], ["--learner-kwargs", "[1]"],
                ["--reward-model-kwargs", "{nope"], ["--task", "mujoco/NoSuchTask-v0"], ["--agents", "sac", "sac"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_the_grid_keeps_each_agents_own_settings_and_runs_the_acceptance_pair_first(bench):
    assert bench.job_order(["sac", "pebble", "qpa", "pref_ppo"], 2) == [
        ("sac", 0), ("pebble", 0), ("sac", 1), ("pebble", 1), ("qpa", 0), ("qpa", 1), ("pref_ppo", 0), ("pref_ppo", 1)]
    a = bench.parse_args(["--seeds", "2", "--fit-epochs", "7"])
    points = bench.build_grid(a)
    assert [p.name.split("__")[0] for p in points] == ["sac", "pebble", "sac", "pebble", "qpa", "qpa", "pref_ppo", "pref_ppo"]
    cfg = {p.config["agent"]: p.config for p in points if p.config["seed"] == 0}
    assert all(c["kind"] == "online" and c["total_timesteps"] == 100_000 for c in cfg.values())
    # SAC on the true reward: no budget, no pre-training, the CPU sizes
    assert cfg["sac"]["total_feedback"] == 0 and cfg["sac"]["agent_kwargs"] == {} and "__b0__" in points[0].name
    assert cfg["sac"]["feedback_per_session"] == 1  # another label budget does not make new SAC runs
    assert cfg["sac"]["learner_kwargs"] == cfg["pebble"]["learner_kwargs"] == cfg["qpa"]["learner_kwargs"] == bench.BENCH_SAC_KWARGS
    assert cfg["pebble"]["agent_kwargs"] == {"unsup_steps": 9000, "fit_kwargs": {"epochs": 7}}
    # each agent's own query selector (QPA samples its policy-aligned pool uniformly)
    assert cfg["qpa"]["selector"] == "uniform" and cfg["pebble"]["selector"] == "disagreement"
    # PrefPPO: PPO's own settings and pre-training
    assert cfg["pref_ppo"]["learner_kwargs"] == {} and cfg["pref_ppo"]["agent_kwargs"] == {"fit_kwargs": {"epochs": 7}}
    assert {c["total_feedback"] for a, c in cfg.items() if a != "sac"} == {500}


def test_a_tiny_run_with_two_workers_reports_and_then_skips_finished_runs(bench, tmp_path, capsys):
    out = tmp_path / "online"
    argv = ["--task", "mujoco/Reacher-v5", "--segment-length", "25", "--steps", "600", "--labels", "20", "--seeds", "1",
            "--agents", "sac", "pebble", "--unsup-steps", "100", "--feedback-every", "200", "--eval-every", "300",
            "--n-eval-episodes", "1", "--fit-epochs", "5",
            "--learner-kwargs", '{"learning_starts": 100, "policy_kwargs": {"net_arch": [16]}, "batch_size": 32}',
            "--reward-model-kwargs", '{"hidden": [16]}', "--workers", "2", "--no-progress", "--out", str(out)]
    result = bench.main(argv)
    table = result["table"]
    assert list(table) == ["sac", "pebble"] and not result["failures"]
    for row in table.values():
        assert set(row["iqm"]) == {"value", "low", "high", "n_runs"} and row["n_runs"] == 1
        assert row["iqm"]["value"] == pytest.approx(row["mean"]) and row["cpu_s_per_run"] > 0
        assert "ratio_to_sac" in row and row["steps_per_cpu_s"] > 0
    assert table["sac"]["cpu_vs_sac"] == 1.0 and table["sac"]["labels_used"] == 0
    assert 0 < table["pebble"]["labels_used"] <= 20 and table["pebble"]["fit_cpu_s"] > 0
    pebble = out / "pebble__mujoco_Reacher-v5__oracle__b20__s0"
    assert [int(c["step"]) for c in result["runs"][pebble.name]["curve"]] == [0, 300, 600]
    assert (pebble / "progress.csv").exists() and (out / "report" / "report.png").stat().st_size > 0
    md = bench.markdown_table(table, "mujoco/Reacher-v5").splitlines()
    assert len(md) == 4 and md[2].startswith("| sac |") and md[3].startswith("| pebble |")
    saved = json.loads((out / "bench_online.json").read_text())
    assert saved["table"]["pebble"]["iqm"] == table["pebble"]["iqm"]
    mtimes = {p: p.stat().st_mtime for p in out.glob("*/metrics.json")}
    assert len(mtimes) == 2
    again = bench.main(argv)  # a second call skips the finished runs
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes and again["table"] == table
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # another --fit-epochs: the harness refuses to mix settings (exit 2)
        bench.main([x if x != "5" else "6" for x in argv])
    assert e.value.code == 2 and re.search("pebble.*other settings.*agent_kwargs", capsys.readouterr().err)
