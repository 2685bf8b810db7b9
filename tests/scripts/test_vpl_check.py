"""scripts/vpl_check.py: a tiny run of one seed gives both agents' success for both users, the latent is judged
by the other goal too, --combine joins per-seed files into one table and figure; bad sizes are one clear error."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


@pytest.mark.usefixtures("one_thread")
def test_tiny_run_and_combine(tmp_path, monkeypatch, capsys):
    vc = importlib.import_module("vpl_check")
    small = {**vc.PRESETS["cpu"], "reward_epochs": 2, "encoder_hidden": 16, "hidden": (16, 16)}
    monkeypatch.setitem(vc.PRESETS, "cpu", small)
    monkeypatch.setattr(vc, "MRIQL_CPU", {**vc.MRIQL_CPU, "hidden": (16, 16), "reward_epochs": 2})
    args = ["--dataset-steps", "500", "--pairs", "40", "--few", "8", "--steps", "3", "--episodes", "1"]
    for s in (0, 1):
        vc.main([*args, "--seeds", str(s), "--out", str(tmp_path / f"s{s}")])
    r = json.loads((tmp_path / "s0" / "vpl.json").read_text())["results"][0]
    assert set(r["vpl"]) == {"user0", "user1", "user0_other_goal", "user1_other_goal"}
    assert set(r["mriql"]) == {"user0", "user1"} and sum(r["labels_per_user"].values()) == 40
    assert all(0.0 <= v["success_rate"] <= 1.0 for v in (*r["vpl"].values(), *r["mriql"].values()))
    capsys.readouterr()
    joined = vc.main(["--combine", str(tmp_path / "s1" / "vpl.json"), str(tmp_path / "s0" / "vpl.json"),
                      "--out", str(tmp_path / "all")])
    assert [x["seed"] for x in joined] == [0, 1] and (tmp_path / "all" / "vpl.png").exists()
    assert "| VPL (a few labels of the user) |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        vc.main(["--steps", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        vc.main(["--combine", str(tmp_path / "none.json")])


@pytest.mark.usefixtures("one_thread")
def test_active_measurement_is_resumable_per_seed(tmp_path, monkeypatch, capsys):
    vc = importlib.import_module("vpl_check")
    small = {**vc.PRESETS["cpu"], "reward_epochs": 2, "encoder_hidden": 16, "hidden": (16, 16)}
    monkeypatch.setitem(vc.PRESETS, "cpu", small)
    args = ["--active", "--dataset-steps", "500", "--pairs", "40", "--steps", "2", "--episodes", "1", "--ks", "1", "8",
            "--pool", "24", "--pools", "1", "--heldout", "20", "--reference", "16", "--out", str(tmp_path)]
    vc.main([*args, "--seeds", "0"])
    first = (tmp_path / "active" / "seed0.json").read_text()
    r = json.loads(first)["result"]
    # 4 selectors x 2 K x 2 users; both users were asked the same pairs (one disagreement value per selector, K)
    assert len(r["rows"]) == 16 and {row["selector"] for row in r["rows"]} == set(vc.ACTIVE_SELECTORS)
    for row in r["rows"]:
        assert 0 <= row["success"] <= 1 and 0 <= row["accuracy"] <= 1 and row["distance"] >= 0
        assert 0 <= row["disagree"] <= 1
    assert set(r["prior"]) == set(r["reference"]) == {"user0", "user1"}
    assert set(r["score_auc"]) == {"information_gain", "information_gain_code", "information_gain_predictive"}
    assert vc.score_auc(np.array([3.0, 1.0, 2.0, 2.0]), np.array([True, False, True, False])) == 0.875
    capsys.readouterr()
    vc.main([*args, "--seeds", "0", "1"])  # seed 0 is skipped, seed 1 runs; the summary covers both
    assert "seed 0: " in capsys.readouterr().out and (tmp_path / "active" / "seed0.json").read_text() == first
    summary = json.loads((tmp_path / "vpl_active.json").read_text())
    assert summary["meta"]["seeds"] == [0, 1] and len(summary["summary"]["information_gain"]["8"]["success"][1]) == 2
    assert (tmp_path / "vpl_active.png").exists()
    for bad in (["--ks", "0"], ["--ks", "30"], ["--pool", "0"], ["--disagree", "1.5"]):
        with pytest.raises(SystemExit) as e:
            vc.main([*args, *bad])
        assert e.value.code == 2
    with pytest.raises(SystemExit):
        vc.main(["--active"])  # no --out
    # --disagree: a pool in which exactly that fraction of pairs tells the users apart
    ns = vc.argparse.Namespace(pool=20, disagree=0.1, segment=5)
    ds = vc.collect("pointmass/two-goal", "scripted", n_steps=500, seed=0, noise=[0.3, 1.0, 2.0])
    pools = vc.candidate_pool(ds, 3, ns)
    assert len(pools[0]) == 20 and np.sum(pools[0].label != pools[1].label) == 2
    assert np.array_equal(pools[0].a.obs, pools[1].a.obs)
