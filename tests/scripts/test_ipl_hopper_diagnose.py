"""scripts/investigations/ipl_hopper_diagnose.py: every variant trains and is measured on real files; the beta-0 variant
shares the default's critic (its training does not read the policy); bad input is one clear error."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from pbrl.envs.collect import collect
    from pbrl.envs.d4rl import save_d4rl
    from pbrl.envs.labelling import label_dataset

    d = tmp_path_factory.mktemp("hop")
    ds = collect("mujoco/Hopper-v5", "random", n_steps=600, seed=0)
    save_d4rl(ds, d / "mr.hdf5")
    label_dataset(ds, "oracle", 16, segment_length=8, seed=1).save(d / "mr.prefs_oracle_500.h5")
    label_dataset(ds, "oracle", 16, segment_length=8, seed=2).save(d / "mr.prefs_oracle_2000.h5")
    return d


def test_every_variant_runs_and_the_critic_ignores_the_policy(files, tmp_path):
    mod = load_script("ipl_hopper_diagnose")
    res = mod.main(["--dataset", str(files / "mr.hdf5"), "--steps", "4", "--eval-every", "2", "--eval-episodes", "1",
                    "--hidden", "16", "16", "--out", str(tmp_path)])
    assert list(res["variants"]) == list(mod.VARIANTS)
    for rows in res["variants"].values():
        assert [r["step"] for r in rows] == [2, 4]
        assert all(0.0 <= r["held_out_accuracy"] <= 1.0 and -1.0 <= r["reward_pearson"] <= 1.0 for r in rows)
    v = res["variants"]
    # same seed, same critic updates: the implicit reward is the same with and without the advantage weights
    assert v["ipl"][-1]["reward_mean"] == pytest.approx(v["ipl-beta0"][-1]["reward_mean"], abs=1e-6)
    assert v["ipl"][-1]["reward_mean"] != v["ipl-no-terminals"][-1]["reward_mean"]
    saved = json.loads((tmp_path / "ipl_hopper_diagnose.json").read_text())
    assert saved["variants"] == res["variants"] and (tmp_path / "ipl_hopper_diagnose.png").exists()
    assert mod.main(["--report-only", "--out", str(tmp_path)])["variants"] == res["variants"]


def test_missing_files_are_one_clear_error(tmp_path, capsys):
    mod = load_script("ipl_hopper_diagnose")
    with pytest.raises(SystemExit) as e:
        mod.main(["--dataset", str(tmp_path / "none.hdf5"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and not (tmp_path / "x").exists()
    assert "--dataset" in capsys.readouterr().err
