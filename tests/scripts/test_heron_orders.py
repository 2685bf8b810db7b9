"""scripts/investigations/heron_orders.py: the smoke run trains both orders with the heron teacher, labels are collected and
the per-step factors are recorded; bad sizes are one clear error before any work."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


def test_smoke_run_trains_both_orders(tmp_path):
    ho = load_script("heron_orders")
    res = ho.main(["--smoke", "--seeds", "0", "--out", str(tmp_path)])
    assert list(res["results"]) == [ho.run_name(o, ls) for ls in (-2.0, 0.0) for o in ho.ORDERS]
    for per_seed in res["results"].values():
        r = per_seed["0"]
        assert r["asked"] == 8 and 0 < r["labels"] <= 8  # full ties are skipped queries
        assert r["reward_ctrl"] <= 0.0  # a control cost
        assert abs(r["reward_forward"] + r["reward_ctrl"] - r["reward"]) < 1e-4  # HalfCheetah's reward is their sum
        assert -1.0 <= r["corr_reward_ctrl"] <= 1.0 and 0.0 < r["segment_abs_action"] <= 1.0
    # a smaller initial log-std explores with smaller actions (the diagnostic the HERON page relies on)
    small, big = (res["results"][ho.run_name("energy first", ls)]["0"]["segment_abs_action"] for ls in (-2.0, 0.0))
    assert small < big
    saved = json.loads((tmp_path / "heron_orders.json").read_text())
    assert saved["results"] == res["results"] and (tmp_path / "heron_orders.png").exists()


def test_bad_sizes_are_one_clear_error(tmp_path, capsys):
    ho = load_script("heron_orders")
    for argv, msg in ((["--steps", "0"], "--steps must be >= 1"),
                      (["--segment-length", "80", "--episode-steps", "50"], "must be <= --episode-steps"),
                      (["--log-std-init", "nan"], "--log-std-init must be finite")):
        with pytest.raises(SystemExit) as e:
            ho.main([*argv, "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
