"""scripts/investigations/offline_reward_quality.py: the learned rewards of a tiny bench_offline run's MR+IQL and PT + IQL
rows, scored on fresh pairs and against the true reward; runs without a saved agent are skipped."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


def test_fresh_pair_accuracy_and_correlation_of_both_learned_rewards(tmp_path):
    bench = load_script("bench_offline")
    quality = load_script("offline_reward_quality")
    out = tmp_path / "bench"
    small_pt = {"reward_epochs": 2, "reward_model_kwargs": {"embed_dim": 8, "pref_attn_dim": 8}}
    res = bench.main(["--datasets", "collect:mujoco/Reacher-v5:random:600", "--steps", "20", "--eval-every", "20",
                      "--seeds", "0", "--n-pairs", "16", "--segment-length", "10", "--hidden", "16", "16",
                      "--eval-episodes", "1", "--workers", "2", "--no-progress", "--agents", "iql_true", "mriql",
                      "pt_iql", "--out", str(out),
                      "--agent-kwargs", json.dumps({"mriql": {"reward_epochs": 2}, "pt_iql": small_pt})])
    assert not res["failures"]
    got = quality.main(["--out", str(out), "--pairs", "40"])
    runs = {r["row"]: r for r in got["runs"]}
    assert set(runs) == {"mriql", "pt_iql"}  # IQL on the true reward has no learned reward
    assert runs["pt_iql"]["reward_model"] == "transformer" and runs["mriql"]["reward_model"] == "ensemble"
    for r in runs.values():
        assert 0.0 <= r["pair_accuracy"] <= 1.0 and 0.0 <= r["step_pair_accuracy"] <= 1.0
        assert -1.0 <= r["pearson"] <= 1.0 and r["n_pairs"] == 40
    # the ensemble's segment score is the sum of the per-step rewards IQL gets: both accuracies agree
    assert runs["mriql"]["step_pair_accuracy"] == pytest.approx(runs["mriql"]["pair_accuracy"])
    saved = json.loads((out / "reward_quality.json").read_text())
    assert set(saved["summary"]["mujoco_Reacher-v5_random"]) == {"mriql", "pt_iql"}
    assert (out / "reward_quality.png").stat().st_size > 0
    # without the saved agents (a fresh checkout) the saved rows are kept, not emptied
    for p in out.glob("*/*/agent.pt"):
        p.unlink()
    assert quality.main(["--out", str(out)])["runs"] == got["runs"]
    (out / "reward_quality.json").unlink()
    with pytest.raises(SystemExit, match="no finished"):
        quality.main(["--out", str(out)])
    with pytest.raises(SystemExit, match="not a folder"):
        quality.parse_args(["--out", str(tmp_path / "nope")])
