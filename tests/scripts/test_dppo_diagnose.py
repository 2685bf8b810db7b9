"""scripts/investigations/dppo_diagnose.py: every variant trains and is measured on real files; the true and
phase-normalised scores are what they claim; bad input is one clear error before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from pbrl.envs.collect import collect
    from pbrl.envs.d4rl import save_d4rl
    from pbrl.envs.labelling import label_dataset

    d = tmp_path_factory.mktemp("hop")
    ds = collect("mujoco/Hopper-v5", "random", n_steps=600, seed=0)
    save_d4rl(ds, d / "me.hdf5")
    label_dataset(ds, "oracle", 16, segment_length=8, seed=1).save(d / "me.prefs_oracle_300.h5")
    return d


def test_phase_means_and_quantiles_by_hand():
    mod = load_script("dppo_diagnose")
    score, offset = np.array([1.0, 3.0, 10.0, 20.0]), np.array([0, 0, 7, 7])
    assert mod.phase_means(score, offset).tolist() == [2.0, 2.0, 15.0, 15.0]
    # quantiles 0, 1/3, 2/3, 1: the offsets 0-4 hold the two worst windows, 5-9 the two best
    q = mod.quantile_by_offset(score, offset)
    assert q == pytest.approx({"0-4": 1 / 6, "5-9": 5 / 6})


def test_true_and_phase_scores_replace_the_predictor(files):
    from pbrl.agents.dppo import window_starts
    from pbrl.envs.datasets import load_dataset

    mod = load_script("dppo_diagnose")
    ds = load_dataset(files / "me.hdf5")
    start, low, _ = window_starts(*ds.episode_bounds, 8)
    true = np.array([np.sum(ds.rewards[s : s + 8]) for s in start])
    agent = mod._agent_class("dppo-true", None)(ds.obs_dim, ds.act_dim)
    s, score = agent.score_windows(ds, 8)
    assert np.array_equal(s, start) and np.allclose(score, true, atol=1e-4)
    s, score = mod._agent_class("dppo-phase", None)(ds.obs_dim, ds.act_dim).score_windows(ds, 8)
    assert np.allclose(score, true - mod.phase_means(true, start - low), atol=1e-4)
    s, score = mod._agent_class("bc", 0.5)(ds.obs_dim, ds.act_dim).score_windows(ds, 8)
    assert len(s) < len(start) and score.min() > np.median(true)


def test_every_variant_runs_and_is_reported(files, tmp_path):
    mod = load_script("dppo_diagnose")
    res = mod.main(["--dataset", str(files / "me.hdf5"), "--steps", "4", "--eval-every", "2", "--eval-episodes", "1",
                    "--hidden", "16", "16", "--predictor-epochs", "1", "--out", str(tmp_path)])
    assert list(res["variants"]) == list(mod.VARIANTS)
    for v in res["variants"].values():
        assert [r["step"] for r in v["rows"]] == [2, 4]
        assert all(r["d_all"] > 0 and r["mean_length"] >= 1 and np.isfinite(r["mean_return"]) for r in v["rows"])
    assert -1.0 <= res["variants"]["pred-lam1"]["score_spearman_true"] <= 1.0
    assert all(0.0 <= q <= 1.0 for q in res["true_return_quantile_by_offset"].values())
    saved = json.loads((tmp_path / "dppo_diagnose.json").read_text())
    assert saved["variants"] == res["variants"] and (tmp_path / "dppo_diagnose.png").exists()
    # a rerun keeps the finished variants instead of training them again
    again = mod.main(["--dataset", str(files / "me.hdf5"), "--steps", "4", "--eval-every", "2", "--out", str(tmp_path)])
    assert again["variants"] == res["variants"]
    assert mod.main(["--report-only", "--out", str(tmp_path)])["variants"] == res["variants"]


def test_missing_files_are_one_clear_error(tmp_path, capsys):
    mod = load_script("dppo_diagnose")
    with pytest.raises(SystemExit) as e:
        mod.main(["--dataset", str(tmp_path / "none.hdf5"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and not (tmp_path / "x").exists()
    assert "--dataset" in capsys.readouterr().err
