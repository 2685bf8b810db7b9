"""scripts/offline_curve.py: where an IQM curve flattens, the recommended budget, a tiny end-to-end measurement,
the default grid (its size and estimated cost)."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def curve():
    return load_script("offline_curve")


STEPS = list(range(100, 1001, 100))


def test_a_curve_is_flat_from_the_first_point_that_stays_within_the_band_of_its_plateau(curve):
    values = [0, 50, 80, 95, 100, 99, 101, 100, 100, 100]
    pt = curve.flat_point(STEPS, values, scale=100.0, tolerance=0.05, plateau_share=0.2)
    # plateau: the mean over updates >= 800; band 5: 95 is inside, 80 is not
    assert pt["plateau"] == pytest.approx(100.0) and pt["band"] == pytest.approx(5.0)
    assert pt["flat_at"] == 400 and pt["flat_before_window"] and pt["plateau_from"] == 800
    # a dip later on moves the point past the dip
    pt = curve.flat_point(STEPS, [0, 50, 80, 95, 100, 80, 101, 100, 100, 100], 100.0, 0.05, 0.2)
    assert pt["flat_at"] == 700
    # a curve still moving in its plateau window never settles before it
    pt = curve.flat_point(STEPS, [0] * 9 + [100], 100.0, 0.05, 0.2)
    assert pt["flat_at"] is None and not pt["flat_before_window"]


def test_the_recommendation_is_the_latest_aggregate_flatten_point_over_the_agents(curve):
    def row(values):
        return {"curve": {"step": STEPS, "value": values}}

    rising = [0, 50, 80, 95, 100, 99, 101, 100, 100, 100]
    late = [0, 10, 20, 30, 40, 50, 60, 99, 100, 100]
    summary = {"per_dataset": {"a": {"iql_true": row(rising), "cpl": row(late)}},
               "aggregate": {"iql_true": row(rising), "cpl": row(late)}}
    out = curve.analyse(summary, ["iql_true", "cpl"], tolerance=0.05, plateau_share=0.2)
    assert out["basis"] == [curve.AGGREGATE] and out["recommended_steps"] == 800
    assert out["points"]["a"]["iql_true"]["flat_at"] == 400
    assert any("cpl" in w for w in out["warnings"])  # flat only inside its plateau window: run longer
    assert "recommended --steps: 800" in curve.markdown(out, ["iql_true", "cpl"])
    # without a 0-100 dataset the per-dataset points decide; a curve that never settles counts as the budget
    summary = {"per_dataset": {"a": {"iql_true": row(rising), "cpl": row([0] * 9 + [100])}}, "aggregate": {}}
    assert curve.analyse(summary, ["iql_true", "cpl"], 0.05, 0.2)["recommended_steps"] == 1000


def test_a_tiny_measurement_writes_flatten_points_curves_and_a_plot(curve, tmp_path):
    out = tmp_path / "curve"
    res = curve.main(["--datasets", "collect:mujoco/Reacher-v5:random:600", "--agents", "iql_true", "cpl",
                      "--steps", "120", "--eval-every", "30", "--seeds", "0", "--n-pairs", "16",
                      "--segment-length", "10", "--hidden", "16", "16", "--eval-episodes", "1", "--workers", "2",
                      "--no-progress", "--out", str(out)])
    name = "mujoco/Reacher-v5/random"
    assert set(res["points"][name]) == {"iql_true", "cpl"}
    assert res["recommended_steps"] in (30, 60, 90, 120)
    assert res["curves"][name]["cpl"]["step"] == [30, 60, 90, 120]
    saved = json.loads((out / "offline_curve.json").read_text())
    assert saved["recommended_steps"] == res["recommended_steps"] and saved["settings"]["steps"] == 120
    assert (out / "offline_curve.png").stat().st_size > 0 and (out / "bench_offline.json").exists()
    with pytest.raises(SystemExit, match="tolerance"):
        curve.parse_args(["--datasets", "collect:mujoco/Reacher-v5:random:600", "--tolerance", "0"])
    a = curve.parse_args(["--datasets", "collect:mujoco/Reacher-v5:random:600"])
    assert a.agents == list(curve.CURVE_AGENTS) and a.steps == curve.CURVE_STEPS and a.eval_every == curve.CURVE_EVAL_EVERY


def test_the_default_grid_is_two_datasets_four_agents_two_seeds_at_about_two_and_a_half_cpu_hours(curve, tmp_path):
    from pbrl.envs.datasets import collect, save_d4rl

    with pytest.raises(SystemExit, match="make_datasets"):
        curve.parse_args(["--data-dir", str(tmp_path)])
    for (task, policy), rel in zip((("mujoco/Hopper-v5", "random"), ("metaworld/drawer-open-v3", "scripted")),
                                   curve.CURVE_DATASETS):
        save_d4rl(collect(task, policy=policy, n_steps=60, seed=0), tmp_path / f"{rel}.hdf5")
    (tmp_path / "metaworld_door-open-v3").mkdir()
    (tmp_path / "metaworld_door-open-v3" / "scripted-noisy.hdf5").write_bytes(b"")  # other files are not used
    res = curve.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--dry-run"])
    assert len(res["points"]) == 2 * 4 * 2 == len(curve.CURVE_DATASETS) * len(curve.CURVE_AGENTS) * len(curve.CURVE_SEEDS)
    assert {p.split("/")[0] for p in res["points"]} == {"mujoco_Hopper-v5_random", "metaworld_drawer-open-v3_scripted"}
    assert curve.CURVE_STEPS == 15_000 and curve.CURVE_STEPS // curve.CURVE_EVAL_EVERY == 20
    # the docstring's cost, from the committed measurements (docs/bench_offline.json, docs/offline_costs.json)
    assert 2.0 * 3600 <= res["cpu_s_estimate"] <= 3.0 * 3600 and not res["estimate"]["unmeasured"]
