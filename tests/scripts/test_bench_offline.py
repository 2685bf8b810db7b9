"""scripts/bench_offline.py: a tiny end-to-end run and the content of its JSON table; flag errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_offline", ROOT / "scripts" / "bench_offline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_table_plot_and_timing(bench, tmp_path):
    agents = ["iql_true", "cpl", "oppo", "pearl"]
    report = bench.main([
        "--datasets", "collect:mujoco/Reacher-v5:random:1000",
        "--agents", *agents, "--steps", "40", "--seeds", "0", "1", "--n-pairs", "32", "--segment-length", "10",
        "--hidden", "16", "16", "--eval-episodes", "1", "--workers", "1", "--out", str(tmp_path), "--no-progress",
    ])
    data = json.loads((tmp_path / "bench_offline.json").read_text())
    assert (tmp_path / "bench_offline.png").stat().st_size > 1000
    assert data["config"]["steps"] == 40 and data["config"]["seeds"] == [0, 1]
    name = "mujoco/Reacher-v5/random"
    # no reference returns in a freshly collected locomotion dataset: the score is the raw return
    assert data["datasets"][name]["metric"] == "return" and data["datasets"][name]["transitions"] == 1000
    # PEARL needs another task of the same domain as its label source: with one dataset it is skipped, with a reason
    assert [s["agent"] for s in data["skipped"]] == ["pearl"] and "transfer" in data["skipped"][0]["reason"]
    rows = data["results"][name]
    assert set(rows) == {"iql_true", "cpl", "oppo"}
    for a, row in rows.items():
        assert row["seeds"] == [0, 1] and len(row["per_seed"]) == 2
        assert all(v == r["mean_return"] for v, r in zip(row["per_seed"], sorted(
            (r for r in data["runs"] if r["agent"] == a), key=lambda r: r["seed"])))
        assert row["mean"] == pytest.approx(np.mean(row["per_seed"]))
        assert row["std"] == pytest.approx(np.std(row["per_seed"]))
        assert row["wall_s_per_1k_updates"] > 0 and row["cpu_s_per_1k_updates"] > 0
        assert a == "iql_true" or row["ratio_to_iql_true"] is None or np.isfinite(row["ratio_to_iql_true"])
    assert rows["iql_true"]["ratio_to_iql_true"] is None
    assert set(data["timing_s_per_1k_updates"]) == {"iql_true", "cpl", "oppo"}
    assert len(data["runs"]) == 6 and {r["steps"] for r in data["runs"]} == {40}
    # the same seed gets the same labels and the same agent: the two seeds are distinct runs
    cpl_runs = [r for r in data["runs"] if r["agent"] == "cpl"]
    assert cpl_runs[0]["final_losses"] != cpl_runs[1]["final_losses"]
    assert set(data["target"]["per_agent"]) == {"cpl", "oppo", "pearl"}
    assert report["table"].splitlines()[0].startswith("dataset")


def test_bad_flags_stop_with_one_clear_error(bench, tmp_path):
    with pytest.raises(SystemExit, match="unknown agent"):
        bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--agents", "dqn"])
    with pytest.raises(SystemExit, match="make_datasets"):
        bench.parse_args(["--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="steps"):
        bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--steps", "0"])
    with pytest.raises(SystemExit, match="agent-kwargs"):
        bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--agent-kwargs", "{oops"])
    with pytest.raises(SystemExit, match="collect:<task>"):
        bench.parse_args(["--datasets", "collect:metaworld/reach-v3"])
    with pytest.raises(SystemExit, match="does not exist"):
        bench.parse_args(["--datasets", str(tmp_path / "missing.hdf5")])


def test_default_datasets_are_make_datasets_files_of_the_chosen_kinds(bench, tmp_path):
    for rel in ("hopper/medium.hdf5", "hopper/medium-replay.hdf5", "button-press/scripted-noisy.hdf5",
                "hopper/medium.prefs_oracle_500.h5"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    args = bench.parse_args(["--data-dir", str(tmp_path)])
    assert sorted(Path(d).relative_to(tmp_path).as_posix() for d in args.datasets) == [
        "button-press/scripted-noisy.hdf5", "hopper/medium-replay.hdf5"]
    args = bench.parse_args(["--data-dir", str(tmp_path), "--kinds", "all"])
    assert len(args.datasets) == 3


def test_failed_run_is_reported_and_finished_runs_resume(bench, tmp_path):
    argv = ["--datasets", "collect:mujoco/Reacher-v5:random:600", "--agents", "iql_true", "cpl", "--steps", "20",
            "--seeds", "0", "--n-pairs", "16", "--segment-length", "10", "--hidden", "16", "16",
            "--eval-episodes", "1", "--workers", "1", "--out", str(tmp_path), "--no-progress"]
    bad = ["--agent-kwargs", '{"cpl": {"alpha": -1.0}}']
    first = bench.main(argv + bad)
    assert [f["agent"] for f in first["failures"]] == ["cpl"] and "alpha" in first["failures"][0]["error"]
    assert [r["agent"] for r in first["runs"]] == ["iql_true"]
    partial = tmp_path / "bench_offline.partial.json"
    assert partial.exists()  # kept because a run failed
    # other settings cannot reuse the saved runs
    with pytest.raises(SystemExit, match="other settings"):
        bench.main([("30" if a == "20" else a) for a in argv] + bad + ["--resume"])
    again = bench.main(argv + bad + ["--resume"])
    assert again["runs"] == first["runs"]  # the finished IQL run is reused as it was, not retrained
    assert len(again["failures"]) == 1


def test_agents_come_from_the_registry_at_their_defaults_plus_documented_cpu_changes(bench):
    from pbrl.agents.registry import agent_names, get_agent

    assert sorted(bench.AGENTS.values()) == agent_names("offline")  # every offline agent, no private list
    assert bench.AGENTS["iql_true"] == "iql" and bench.agent_class("iql_true") is get_agent("iql")
    assert bench.agent_class("cpl") is get_agent("cpl") and not bench.needs_labels("bc")
    args = bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--steps", "1500"])
    cpl = bench.agent_kwargs("cpl", args)
    # the CPL recipe is CPL's own default now: the benchmark only shrinks sizes and scales the warmup
    assert cpl == {"hidden": (256, 256), "pair_batch_size": 32, "lr_warmup": 30}
    agent = bench.agent_class("cpl")(3, 2, **cpl)
    assert agent.policy_kind == "deterministic" and agent.lr == 1e-4 and agent.bc_fraction == 0.4
    assert bench.agent_kwargs("oppo", args)["warmup_steps"] == 150
    # --hidden reaches every agent, --agent-kwargs wins over everything
    args = bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--hidden", "16", "16",
                             "--agent-kwargs", '{"cpl": {"lr_warmup": 0, "hidden": [8]}}'])
    assert bench.agent_kwargs("cplbc", args)["hidden"] == (16, 16) and bench.agent_kwargs("mriql", args)["hidden"] == (16, 16)
    assert bench.agent_kwargs("cpl", args)["lr_warmup"] == 0 and bench.agent_kwargs("cpl", args)["hidden"] == [8]
