"""scripts/investigations/hprior_reward_quality.py: the smoke run fits both variants on the same labels and records the
agreement numbers; bad input is one clear error before any work."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


def test_smoke_run_fits_both_variants(tmp_path):
    hq = load_script("hprior_reward_quality")
    res = hq.main(["--smoke", "--out", str(tmp_path)])
    r = res["results"]["mujoco/Reacher-v5"]["0"]
    assert set(hq.VARIANTS) <= set(r) and r["world_loss"] > 0
    for v in hq.VARIANTS:
        assert 0.0 <= r[v]["accuracy"] <= 1.0 and -1.0 <= r[v]["correlation"] <= 1.0
    saved = json.loads((tmp_path / "hprior_reward_quality.json").read_text())
    assert saved["results"] == res["results"] and (tmp_path / "hprior_reward_quality.png").exists()


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    hq = load_script("hprior_reward_quality")
    for argv, msg in ((["--labels", "0"], "--labels must be >= 1"), (["--tasks", "mujoco/Cheetah-v5"], "unknown task"),
                      (["--weight", "-1"], "--weight a finite number")):
        with pytest.raises(SystemExit) as e:
            hq.main([*argv, "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
