"""scripts/bench_online.py: flags, job order, a tiny two-worker run, its table and --resume."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    # imported by name from scripts/ so that the spawned worker processes can import it too
    # (multiprocessing hands the parent's sys.path to its children)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        yield importlib.import_module("bench_online")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_flags_and_defaults(bench):
    a = bench.parse_args([])
    assert a.task == "mujoco/HalfCheetah-v5" and a.steps == 100_000 and a.labels == 500 and a.seeds == 3
    assert a.learner_kwargs == bench.BENCH_SAC_KWARGS and a.per_session == 50 and a.workers == 2
    assert bench.parse_args(["--paper-sizes"]).learner_kwargs == {}
    assert bench.parse_args(["--learner-kwargs", '{"batch_size": 64}']).learner_kwargs == {"batch_size": 64}
    for bad in (["--algos", "SAC,DDPG"], ["--steps", "0"], ["--workers", "0"], ["--learner-kwargs", "[1]"],
                ["--reward-model-kwargs", "{nope"], ["--task", "mujoco/NoSuchTask-v0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_job_order_puts_the_acceptance_pair_first(bench):
    jobs = bench._job_order(["SAC", "PEBBLE", "QPA", "PrefPPO"], 2)
    assert jobs == [("SAC", 0), ("PEBBLE", 0), ("SAC", 1), ("PEBBLE", 1),
                    ("QPA", 0), ("QPA", 1), ("PrefPPO", 0), ("PrefPPO", 1)]


def test_tiny_run_with_two_workers_then_resume(bench, tmp_path, monkeypatch):
    argv = ["--task", "mujoco/Reacher-v5", "--segment-length", "25", "--steps", "600", "--labels", "20", "--seeds", "1", "--algos", "SAC,PEBBLE", "--unsup-steps", "100",
            "--feedback-every", "200", "--eval-every", "300", "--n-eval-episodes", "1", "--fit-epochs", "5",
            "--learner-kwargs", '{"learning_starts": 100, "policy_kwargs": {"net_arch": [16]}, "batch_size": 32}',
            "--reward-model-kwargs", '{"hidden": [16]}', "--workers", "2", "--out", str(tmp_path)]
    result = bench.main(argv)
    table = result["table"]
    assert set(table) == {"SAC", "PEBBLE"}
    assert table["SAC"]["return_ratio_to_SAC"] in (1.0, None)
    pebble = [r for r in result["runs"] if r["algo"] == "PEBBLE"][0]
    assert pebble["labels_asked"] <= 20 and pebble["labels_used"] > 0
    assert [h["step"] for h in pebble["history"]] == [300, 600]
    assert (tmp_path / "runs" / "SAC_s0.json").exists() and (tmp_path / "bench_online.png").stat().st_size > 0
    assert (tmp_path / "logs" / "PEBBLE_s0" / "progress.csv").read_text().count("eval/mean_return") == 1
    md = bench.markdown_table(table, "mujoco/Reacher-v5").splitlines()
    assert len(md) == 4 and md[2].startswith("| SAC |") and md[3].startswith("| PEBBLE |")
    saved = json.loads((tmp_path / "bench_online.json").read_text())
    assert saved["table"]["PEBBLE"]["final_return_mean"] == pytest.approx(table["PEBBLE"]["final_return_mean"])

    def no_training(*args, **kwargs):
        raise AssertionError("--resume retrained a saved run")

    monkeypatch.setattr(bench, "run_one", no_training)
    again = bench.main(argv + ["--resume"])
    assert again["table"]["PEBBLE"]["final_return_mean"] == pytest.approx(table["PEBBLE"]["final_return_mean"])
    assert [(r["algo"], r["seed"]) for r in again["runs"]] == [("SAC", 0), ("PEBBLE", 0)]
    # a saved run made with other settings is refused, not mixed into the table
    with pytest.raises(SystemExit, match="other settings.*labels"):
        bench.main([x if x != "20" else "30" for x in argv] + ["--resume"])
