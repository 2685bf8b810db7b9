"""scripts/investigations/mriql_hindsight_reward.py: a tiny run measures plain MR+IQL and the prior on real
collected data, writes one file per unit and skips finished units on a rerun."""

from __future__ import annotations

import json

from helpers import load_script


def test_a_tiny_run_measures_both_variants_and_resumes(tmp_path, capsys):
    mod = load_script("mriql_hindsight_reward")
    argv = ["--tasks", "mujoco/HalfCheetah-v5", "--seeds", "0", "--labels", "8", "--segment-length", "5",
            "--steps", "300", "--held-out", "10", "--weights", "10", "--world-steps", "2", "--out", str(tmp_path)]
    mod.main(argv)
    rows = json.loads((tmp_path / "mriql_hindsight_reward.json").read_text())
    assert [r["variant"] for r in rows] == ["mriql", "hindsight_10"]
    for r in rows:
        assert 0.0 <= r["pair_accuracy"] <= 1.0 and -1.0 <= r["step_correlation"] <= 1.0
    assert rows[0]["prior_loss"] is None and rows[1]["prior_loss"] is not None
    units = sorted((tmp_path / "units").glob("*.json"))
    mtimes = [u.stat().st_mtime_ns for u in units]
    mod.main(argv)  # finished units are read back, not recomputed
    assert [u.stat().st_mtime_ns for u in units] == mtimes
    assert "hindsight_10" in capsys.readouterr().out
