"""scripts/spo_check.py: the smoke run trains SPO and PrefPPO with both teachers, counts labels, writes the
table and figure; bad sizes are one clear error before any work."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


def test_smoke_run_trains_both_agents_with_both_teachers(tmp_path):
    sc = importlib.import_module("spo_check")
    res = sc.main(["--smoke", "--seeds", "0", "--out", str(tmp_path)])
    for teacher in sc.TEACHERS:
        spo, ppo = res["runs"][teacher]["spo"]["0"], res["runs"][teacher]["pref_ppo"]["0"]
        # 2 envs x 2 rollouts of one 200-step episode each: 4 episodes against queues of 0, 1, 2, 3
        assert spo["asked"] == 6 and spo["labels"] == 6
        assert 0 < ppo["asked"] <= 40 and len(spo["curve"]) == 2
        assert 0.0 <= res["h2h"][teacher]["0"] <= 1.0
    saved = json.loads((tmp_path / "spo_check.json").read_text())
    assert saved["runs"] == res["runs"] and (tmp_path / "spo_check.png").exists()


def test_bad_sizes_are_one_clear_error(tmp_path, capsys):
    sc = importlib.import_module("spo_check")
    for argv, msg in ((["--rollouts", "0"], "--rollouts must be >= 1"), (["--label-ratio", "-1"], "--label-ratio must be > 0")):
        with pytest.raises(SystemExit) as e:
            sc.main([*argv, "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
