"""scripts/investigations/hprior_reward_quality.py: the smoke run fits every variant on the same labels and
records the agreement numbers; finished units are skipped on a rerun and a world model resumed from its
checkpoint gives the numbers of an uninterrupted run; the diagnostics match hand-computed values; bad input
is one clear error before any work."""

from __future__ import annotations

import csv
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import load_script

TASK = "mujoco/Reacher-v5"


def _scores(res):
    return {v: (r["accuracy"], r["correlation"]) for v, r in res["results"][TASK]["0"].items()}


def test_smoke_run_fits_every_variant_and_writes_units(tmp_path, capsys):
    hq = load_script("hprior_reward_quality")
    res = hq.main(["--smoke", "--out", str(tmp_path)])
    r = res["results"][TASK]["0"]
    assert set(hq.VARIANTS) == set(r)
    assert r[hq.PRIOR]["world_loss"] > 0 and [t["steps"] for t in r[hq.PRIOR]["world_trace"]] == [2, 4]
    for v in hq.VARIANTS:
        assert 0.0 <= r[v]["accuracy"] <= 1.0 and -1.0 <= r[v]["correlation"] <= 1.0
        assert hq.unit_path(tmp_path, TASK, 0, v).exists()
    assert 0.0 < r[hq.PRIOR]["alpha"]["alpha_entropy_vs_uniform"] <= 1.0
    saved = json.loads((tmp_path / "hprior_reward_quality.json").read_text())
    assert saved["results"] == res["results"] and (tmp_path / "hprior_reward_quality.png").exists()
    with open(tmp_path / "hprior_reward_quality.csv") as fh:
        assert sorted(row["variant"] for row in csv.DictReader(fh)) == sorted(hq.VARIANTS)
    out = capsys.readouterr().out
    assert "[1/3] mujoco/Reacher-v5 seed 0 Bradley-Terry: accuracy" in out and "world model 4/4 steps" in out

    # a rerun skips every finished unit and reports the same numbers
    again = hq.main(["--smoke", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.count("done before") == 3 and "world model" not in out
    assert again["results"] == res["results"]


def test_world_model_resumed_from_its_checkpoint_equals_an_uninterrupted_run(tmp_path, capsys):
    hq = load_script("hprior_reward_quality")
    whole = hq.main(["--smoke", "--out", str(tmp_path / "whole")])
    # a run killed after the first world-model chunk: its checkpoint holds 2 of the 4 steps, no prior unit yet
    part = tmp_path / "part"
    hq.main(["--smoke", "--world-steps", "2", "--out", str(part)])
    assert json.loads((hq.unit_dir(part, TASK, 0) / "world.json").read_text())["steps"] == 2
    hq.unit_path(part, TASK, 0, hq.PRIOR).unlink()
    capsys.readouterr()
    resumed = hq.main(["--smoke", "--out", str(part)])
    out = capsys.readouterr().out
    assert "world model 2/4" not in out and "world model 4/4" in out  # only the missing chunk trained
    assert _scores(resumed) == _scores(whole)
    a, b = (x["results"][TASK]["0"][hq.PRIOR] for x in (resumed, whole))
    assert a["alpha"] == b["alpha"] and [t["world_loss"] for t in a["world_trace"]] == [
        t["world_loss"] for t in b["world_trace"]]


def test_units_made_with_other_settings_stop_the_run_before_any_work(tmp_path, capsys):
    hq = load_script("hprior_reward_quality")
    hq.main(["--smoke", "--out", str(tmp_path)])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    stamp = (tmp_path / "hprior_reward_quality.json").stat().st_mtime_ns
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        hq.main(["--smoke", "--weight", "10", "--out", str(tmp_path)])
    assert e.value.code == 2 and "was made with other settings" in capsys.readouterr().err
    # fewer world-model steps than the checkpoint holds
    for v in hq.VARIANTS:
        hq.unit_path(tmp_path, TASK, 0, v).unlink()
    with pytest.raises(SystemExit) as e:
        hq.main(["--smoke", "--world-steps", "2", "--out", str(tmp_path)])
    assert e.value.code == 2 and "past --world-steps" in capsys.readouterr().err
    assert (tmp_path / "hprior_reward_quality.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.rglob("*")) == [n for n in before if not n.endswith("prior.json")
                                                           and n != "bt.json"]


def test_alpha_diagnostics_and_within_share_against_hand_computed_values():
    hq = load_script("hprior_reward_quality")
    H = 4
    r = np.array([[0.0, 0.0, 2.0, 0.0], [1.0, 0.0, 0.0, 1.0]])  # returns 2 and 2
    segs = SimpleNamespace(obs=np.zeros((2, H, 3)), act=np.zeros((2, H, 1)), reward=r)
    onehot = SimpleNamespace(importance=lambda o, a: np.array([[0, 0, 1.0, 0], [0.5, 0, 0, 0.5]]))
    d = hq.alpha_diagnostics(onehot, [segs])
    # alpha_t * R equals the true reward: perfect agreement within and across segments
    assert d["within_segment_target_corr"] == pytest.approx(1.0) and d["target_corr"] == pytest.approx(1.0)
    assert d["alpha_entropy_vs_uniform"] == pytest.approx((0.0 + np.log(2) / np.log(4)) / 2)
    assert d["alpha_last_step"] == pytest.approx(0.25) and d["alpha_max"] == pytest.approx(0.75)
    # position means [.25, 0, .5, .25] (var 1/32) against all eight entries (var 1/8)
    assert d["alpha_position_share"] == pytest.approx(0.25)
    # the uniform target is constant (both returns are 2): no correlation defined
    assert d["uniform_target_corr"] is None
    uniform = hq._uniform_prior(1.0, 0)
    assert np.array_equal(uniform.importance(segs.obs, segs.act), np.full((2, H), 0.25, dtype=np.float32))
    d = hq.alpha_diagnostics(uniform, [segs])
    assert d["alpha_entropy_vs_uniform"] == pytest.approx(1.0) and d["within_segment_target_corr"] is None
    # within-segment share of variance: rows [0, 2] and [1, 3] -> within var 1 each, total var 1.25
    assert hq._within_share(np.array([[0.0, 2.0], [1.0, 3.0]])) == pytest.approx(1.0 / 1.25)


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    hq = load_script("hprior_reward_quality")
    for argv, msg in ((["--labels", "0"], "--labels must be >= 1"), (["--tasks", "mujoco/Cheetah-v5"], "unknown task"),
                      (["--weight", "-1"], "--weight / --sweep-weights finite"),
                      (["--sweep-weights", "nan"], "--weight / --sweep-weights finite"),
                      (["--world-chunk", "0"], "--world-chunk must be >= 1"),
                      (["--name", "a/b"], "--name must be a plain file name")):
        with pytest.raises(SystemExit) as e:
            hq.main([*argv, "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_shared_world_model_is_trained_once_per_task(tmp_path, capsys):
    hq = load_script("hprior_reward_quality")
    res = hq.main(["--smoke", "--seeds", "0", "1", "--shared-world", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.count("world model 4/4") == 1  # seed 1 loads seed 0's world model
    assert not (hq.unit_dir(tmp_path, TASK, 1) / "world.pt").exists()
    r0, r1 = (res["results"][TASK][s][hq.PRIOR] for s in ("0", "1"))
    assert r0["world_trace"] == r1["world_trace"] and r0["world_loss"] == r1["world_loss"]
    # the same units under per-seed world models are other settings: one clear error
    with pytest.raises(SystemExit) as e:
        hq.main(["--smoke", "--seeds", "0", "1", "--out", str(tmp_path)])
    assert e.value.code == 2 and "was made with other settings" in capsys.readouterr().err
    # a world model depends on the pool, not on the fit: copied into a run with other --epochs it is reused
    other = tmp_path / "epochs3"
    hq.unit_dir(other, TASK, 0).mkdir(parents=True)
    for f in ("world.pt", "world.json"):
        shutil.copy(hq.unit_dir(tmp_path, TASK, 0) / f, hq.unit_dir(other, TASK, 0) / f)
    res = hq.main(["--smoke", "--seeds", "0", "--shared-world", "--epochs", "3", "--name", "e3", "--out", str(other)])
    assert "world model" not in capsys.readouterr().out and (other / "e3.json").exists()
    assert res["results"][TASK]["0"][hq.PRIOR]["world_trace"] == r0["world_trace"]


def test_sweep_weights_add_both_priors_at_each_lambda(tmp_path):
    hq = load_script("hprior_reward_quality")
    a = hq.parse_args(["--smoke", "--sweep-weights", "10", "1000", "--out", str(tmp_path / "x")])
    assert hq.variants(a) == [(hq.BT, "none", 0.0), (hq.PRIOR, "world", 1000.0), (hq.UNIFORM, "uniform", 1000.0),
                              (f"{hq.PRIOR} (lambda=10)", "world", 10.0), (f"{hq.UNIFORM} (lambda=10)", "uniform", 10.0)]
    assert hq.setting(a, "uniform", 10.0)["weight"] == 10.0 and "world_steps" not in hq.setting(a, "uniform", 10.0)
    assert hq.unit_path(tmp_path, hq.TASKS[0], 0, f"{hq.PRIOR} (lambda=10)").name == "bt_prior_lambda10.json"
    assert not (tmp_path / "x").exists()
