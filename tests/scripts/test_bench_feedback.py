"""scripts/bench_feedback.py: the grid it builds, and a tiny end-to-end study through pbrl sweep + report."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


@pytest.fixture(scope="module")
def bench():
    return importlib.import_module("bench_feedback")


def test_default_grid_is_sac_once_per_task_and_seed_then_agents_x_budgets_plus_a_mistake_row(bench):
    a = bench.parse_args([])
    names = [p.name for p in bench.build_grid(a)]
    assert len(names) == len(set(names))
    sac = [n for n in names if n.startswith("sac__")]
    assert len(sac) == len(a.tasks) * a.seeds and all("__b0__" in n for n in sac)
    oracle = [n for n in names if not n.startswith("sac__") and "__oracle__" in n]
    assert len(oracle) == len(bench.PBRL_AGENTS) * len(a.tasks) * len(a.budgets) * a.seeds
    mistake = [n for n in names if "__mistake__" in n]
    assert len(mistake) == len(bench.PBRL_AGENTS) * a.seeds and all(a.tasks[0].replace("/", "_") in n for n in mistake)
    with pytest.raises(SystemExit):
        bench.parse_args(["--agents", "pebbel"])


def test_sac_alone_is_only_sac_runs(bench):
    a = bench.parse_args(["--agents", "sac", "--seeds", "1", "--no-mistake"])
    names = [p.name for p in bench.build_grid(a)]
    assert names and all(n.startswith("sac__") for n in names), names


def test_a_tiny_study_runs_resumes_and_reports(bench, tmp_path, capsys):
    argv = ["--tasks", "mujoco/Reacher-v5", "--agents", "sac", "pebble", "--budgets", "6", "--seeds", "1",
            "--steps", "300", "--sessions", "2", "--feedback-every", "50", "--eval-every", "150",
            "--n-eval-episodes", "1", "--no-mistake", "--workers", "2", "--out", str(tmp_path / "study"),
            "--set", json.dumps({"segment_length": 10, "agent_kwargs": {"unsup_steps": 50, "fit_kwargs": {"epochs": 2}},
                                 "learner_kwargs": {"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}},
                                 "reward_model_kwargs": {"hidden": [16]}})]
    res = bench.main(argv)
    table = res["table"]
    assert set(table) == {"sac/0/oracle", "pebble/6/oracle"}
    assert table["sac/0/oracle"]["vs_sac"] == pytest.approx(1.0) or table["sac/0/oracle"]["iqm"]["value"] == 0.0
    saved = json.loads((tmp_path / "study" / "feedback.json").read_text())
    assert saved["table"].keys() == table.keys()
    assert (tmp_path / "study" / "report" / "report.json").exists()
    mtimes = {p: p.stat().st_mtime for p in (tmp_path / "study").glob("*/metrics.json")}
    bench.main(argv)  # a second call skips the finished runs
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes
