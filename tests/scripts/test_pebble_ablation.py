"""scripts/investigations/pebble_ablation.py: each variant changes exactly its one factor in the run's config, bad input
stops before any work, and a tiny two-variant run writes the table, the JSON and the plot."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def abl():
    return load_script("pebble_ablation")


def test_each_variant_changes_one_factor_of_the_grid(abl, tmp_path):
    bench = load_script("bench_online")
    a = abl.parse_args(["--out", str(tmp_path / "o"), "--bench-args", """--reward-model-kwargs '{"hidden": [16]}'"""])
    cfgs = {}
    for v in abl.VARIANTS:
        points = bench.build_grid(bench.parse_args(abl.bench_argv(a, v)))
        assert [p.config["agent"] for p in points] == ["pebble"] * 3 and [p.config["seed"] for p in points] == [0, 1, 2]
        cfgs[v] = points[0].config
    base = cfgs["defaults"]
    assert base["agent_kwargs"] == {"unsup_steps": 9000} and base["reward_model_kwargs"] == {"hidden": [16]}
    assert cfgs["fit_epochs_200"]["agent_kwargs"]["fit_kwargs"] == {"epochs": 200}
    assert cfgs["raw_inputs"]["reward_model_kwargs"] == {"hidden": [16], "normalize": False}
    for v, c in cfgs.items():  # nothing else differs from the defaults' config
        diff = {k for k in set(c) | set(base) if c.get(k) != base.get(k)}
        assert diff == {"defaults": set(), "fit_epochs_200": {"agent_kwargs"}, "raw_inputs": {"reward_model_kwargs"}}[v]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["--variants", "nope"], ["--variants", "defaults", "defaults"], ["--seeds", "0"],
                                  ["--bench-args", "--out x"], ["--bench-args", "--steps 0"],
                                  ["--bench-args", "--reward-model-kwargs [1]"], ["--bench-args", "--reward-model-kwargs {x"]])
def test_bad_input_exits_2_and_writes_nothing(abl, tmp_path, argv):
    with pytest.raises(SystemExit) as e:
        abl.main([*argv, "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and not (tmp_path / "o").exists()


@pytest.mark.slow  # 70 s on 2 cores: a finished investigation; its grid tests stay in the default suite
def test_a_tiny_two_variant_run_writes_the_table_json_and_plot(abl, tmp_path):
    out = tmp_path / "abl"
    tiny = ("--task mujoco/Reacher-v5 --segment-length 25 --steps 600 --labels 20 --unsup-steps 100 --feedback-every 200 "
            "--eval-every 300 --n-eval-episodes 1 --no-progress "
            """--learner-kwargs '{"learning_starts": 100, "policy_kwargs": {"net_arch": [16]}, "batch_size": 32}' """
            """--reward-model-kwargs '{"hidden": [16]}'""")
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"table": {"SAC": {"final_return_per_seed": [1.0, 3.0], "cpu_s_mean": 60.0}}}))
    argv = ["--variants", "defaults", "raw_inputs", "--seeds", "1", "--out", str(out), "--bench-args", tiny,
            "--reference", str(ref)]
    result = abl.main(argv)
    assert list(result["variants"]) == ["defaults", "raw_inputs"]
    for v, folder in (("defaults", "e50"), ("raw_inputs", "rawin")):
        row = result["variants"][v]
        assert row["n_runs"] == 1 and row["per_seed"][0] == pytest.approx(row["iqm"]["value"])
        assert row["curve_steps"] == [0, 300, 600] and len(row["curve_iqm"]) == 3 and row["fit_cpu_s"] > 0
        cfg = json.loads((out / folder / "pebble__mujoco_Reacher-v5__oracle__b20__s0" / "config.json").read_text())
        assert cfg["reward_model_kwargs"].get("normalize", True) is (v == "defaults")
    assert result["reference"]["SAC (true reward), old script"]["mean"] == 2.0
    md = result["markdown"].splitlines()
    assert md[2].startswith("| defaults |") and md[3].startswith("| raw_inputs |") and md[4].startswith("| SAC")
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["variants"]["raw_inputs"]["iqm"] == result["variants"]["raw_inputs"]["iqm"]
    assert (out / "ablation.png").stat().st_size > 0
    again = abl.main([*argv, "--report-only"])  # the summary alone reads the same finished runs
    assert again["variants"]["defaults"]["per_seed"] == result["variants"]["defaults"]["per_seed"]
