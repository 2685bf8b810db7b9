"""scripts/bench_offline.py: the grid of offline sweep points, a tiny end-to-end run through pbrl sweep + report
(resume skips finished runs, identical labels across the agents of a seed), the PT + IQL row (MR+IQL with the
Preference Transformer, in run directories of its own), PEARL's row (another dataset's labels, transferred),
the IQM summary, the CPU estimate, flag errors."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_offline")


@pytest.fixture(scope="module")
def summary_mod():
    return importlib.import_module("pbrl.app.offline_summary")


TINY = ["--datasets", "collect:mujoco/Reacher-v5:random:600", "--steps", "100", "--eval-every", "50",
        "--seeds", "0", "--n-pairs", "16", "--segment-length", "10", "--hidden", "16", "16",
        "--eval-episodes", "1", "--workers", "2", "--no-progress"]


def test_a_tiny_benchmark_runs_resumes_shares_labels_and_reports(bench, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = TINY + ["--agents", "iql_true", "mriql", "cpl", "cplbc", "--out", str(out),
                   "--agent-kwargs", json.dumps({"mriql": {"reward_epochs": 2}, "cplbc": {"alpha": -1.0}})]
    res = bench.main(argv)
    name = "mujoco/Reacher-v5/random"
    # the collected dataset is made once, under the benchmark's folder, and every run points at it
    assert res["datasets"][name]["dataset"] == str((out / "_data" / "mujoco_Reacher-v5_random_600.hdf5").resolve())
    assert res["datasets"][name]["metric"] == "return" and res["datasets"][name]["transitions"] == 600
    rows = res["per_dataset"][name]
    assert set(rows) == {"iql_true", "mriql", "cpl"}
    # a run that raises is reported; the others go on
    assert list(res["failures"]) == ["mujoco_Reacher-v5_random/cplbc__mujoco_Reacher-v5__oracle__b16__s0"]
    assert "alpha" in next(iter(res["failures"].values()))
    for row in rows.values():
        assert set(row["iqm"]) == {"value", "low", "high", "n_runs"} and row["iqm"]["n_runs"] == 1
        assert row["iqm"]["low"] <= row["iqm"]["value"] <= row["iqm"]["high"]
        assert row["curve"]["step"] == [50, 100] and row["curve"]["value"][-1] == pytest.approx(row["iqm"]["value"])
        assert "ratio_to_iql_true" in row and row["cpu_s_per_run"] > 0 and row["updates_per_s"] > 0
    assert set(res["timing"]) == {"iql_true", "mriql", "cpl"}
    assert res["table"].splitlines()[0].startswith("| dataset | score | IQL (true reward)")
    for f in ("bench_offline.json", "bench_offline.png", "bench_offline_curves.png"):
        assert (out / f).stat().st_size > 0
    assert (out / "report" / "mujoco_Reacher-v5_random" / "report.json").exists()
    runs = out / "mujoco_Reacher-v5_random"
    assert (runs / "cpl__mujoco_Reacher-v5__oracle__b16__s0" / "curve.csv").exists()
    # the same dataset, teacher, pairs and seed give every agent of the seed the same labels
    from pbrl.preferences import PreferenceDataset

    a = PreferenceDataset.load(runs / "mriql__mujoco_Reacher-v5__oracle__b16__s0" / "labels.h5")
    b = PreferenceDataset.load(runs / "cpl__mujoco_Reacher-v5__oracle__b16__s0" / "labels.h5")
    assert len(a) == 16 and np.array_equal(a.label, b.label)
    assert np.array_equal(a.a.obs, b.a.obs) and np.array_equal(a.b.act, b.b.act)
    assert not (runs / "iql__mujoco_Reacher-v5__oracle__b16__s0" / "labels.h5").exists()  # the true reward

    mtimes = {p: p.stat().st_mtime for p in runs.glob("*/metrics.json")}
    assert len(mtimes) == 3
    again = bench.main(argv)  # a second call skips the finished runs
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes
    assert again["per_dataset"][name]["cpl"]["iqm"] == rows["cpl"]["iqm"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # another --steps: the harness refuses to mix settings (exit 2)
        bench.main([("200" if x == "100" else x) for x in argv])
    assert e.value.code == 2 and re.search("other settings.*steps", capsys.readouterr().err)


def test_runs_carry_their_dataset_s_sha256_so_a_rebuilt_file_cannot_resume_them(bench, tmp_path, capsys, reacher_random,
                                                                                monkeypatch):
    from pbrl.app.offline_study import write_result
    from pbrl.envs.datasets import save_d4rl
    from pbrl.io import sha256_of

    monkeypatch.chdir(tmp_path)  # the working folder: the committed results name paths under it relatively

    path = save_d4rl(reacher_random, tmp_path / "reacher.hdf5")
    out = tmp_path / "bench"
    argv = ["--datasets", str(path), "--agents", "bc", "--steps", "20", "--eval-every", "20", "--seeds", "0",
            "--hidden", "8", "--eval-episodes", "1", "--workers", "1", "--no-progress", "--out", str(out)]
    res = bench.main(argv)
    (d,) = res["datasets"].values()
    assert d["sha256"] == sha256_of(path)
    (cfg,) = [json.loads(p.read_text()) for p in out.glob("*/*/config.json")]
    assert cfg["dataset_sha256"] == sha256_of(path)
    for f in ("bench_offline.json", "runs.csv"):  # both name the dataset file, relative to the working folder
        text = (out / f).read_text()
        assert str(tmp_path) not in text and "reacher.hdf5" in text, f
    write_result({"dataset": str(path)}, tmp_path)  # offline_curve.py's writer of bench_offline.json
    assert json.loads((tmp_path / "bench_offline.json").read_text()) == {"dataset": "reacher.hdf5"}
    save_d4rl(reacher_random.take(np.arange(300)), path)  # another file at the same path
    assert sha256_of(path) != cfg["dataset_sha256"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2 and re.search("dataset_sha256", capsys.readouterr().err)


def _record(dataset, agent, seed, finals):
    from pbrl.app.report import RunRecord

    curve = [{"step": s, "mean_return": 100.0 * v, "success_rate": v} for s, v in zip((50, 100), finals)]
    return RunRecord(Path(f"/runs/{dataset}/{agent}/{seed}"), {"seed": seed, "task": "t"}, "finished",
                     {"final": curve[-1], "cpu_time_s": 30.0, "wall_time_s": 20.0, "steps": 100}, curve)


def test_summary_is_the_iqm_with_stratified_intervals_and_the_ratio_to_iql_true(summary_mod):
    datasets = [{"name": "mw", "slug": "mw", "metric": "success_rate", "ref": None},
                {"name": "loco", "slug": "loco", "metric": "normalized_score", "ref": [0.0, 200.0]},
                {"name": "raw", "slug": "raw", "metric": "return", "ref": None}]
    cpl = {0: 1.0, 1: 0.5, 2: 0.0}
    runs = {}
    for d in datasets:
        for s in range(3):
            runs.setdefault((d["name"], "iql_true"), []).append(_record(d["name"], "iql_true", s, (0.5, 1.0)))
            runs.setdefault((d["name"], "cpl"), []).append(_record(d["name"], "cpl", s, (0.0, cpl[s])))
    out = summary_mod.summarise(runs, datasets, ["iql_true", "cpl"])
    mw = out["per_dataset"]["mw"]
    assert mw["iql_true"]["iqm"]["value"] == pytest.approx(100.0) and mw["iql_true"]["ratio_to_iql_true"] == 1.0
    assert mw["cpl"]["per_seed"] == [100.0, 50.0, 0.0] and mw["cpl"]["iqm"]["value"] == pytest.approx(50.0)
    assert mw["cpl"]["iqm"]["low"] < 50.0 < mw["cpl"]["iqm"]["high"] and mw["cpl"]["ratio_to_iql_true"] == pytest.approx(0.5)
    assert mw["cpl"]["curve"] == {"step": [50, 100], "value": [0.0, 50.0], "low": [0.0, mw["cpl"]["iqm"]["low"]],
                                  "high": [0.0, mw["cpl"]["iqm"]["high"]]}
    # normalised with the dataset's reference returns: 100 * (R - 0) / 200, R = 100 * success here
    assert out["per_dataset"]["loco"]["iql_true"]["iqm"]["value"] == pytest.approx(50.0)
    assert out["per_dataset"]["raw"]["cpl"]["metric"] == "return"
    # the aggregate pools the 0-100 datasets (not the raw-return one), datasets as strata
    agg = out["aggregate"]["cpl"]
    assert agg["datasets"] == ["mw", "loco"] and agg["iqm"]["n_runs"] == 6 and agg["n_runs"] == 6
    assert agg["ratio_to_iql_true"] == pytest.approx(agg["iqm"]["value"] / out["aggregate"]["iql_true"]["iqm"]["value"])
    assert out["target"]["datasets_at_or_above"] == {"cpl": []}
    assert out["timing"]["cpl"] == {"cpu_s_per_run": 30.0, "cpu_s_per_1k_updates": 300.0, "updates_per_s": 5.0}
    md = summary_mod.markdown(out, ["iql_true", "cpl"]).splitlines()
    assert md[2].startswith("| mw | success % | 100.0 [100.0, 100.0] (100 %) | 50.0 [")
    assert any(line.startswith("| aggregate (2 datasets x seeds) |") for line in md)


def test_every_agent_of_a_seed_gets_the_same_label_settings(bench, tmp_path, reacher_random):
    from pbrl.envs.datasets import save_d4rl

    path = save_d4rl(reacher_random, tmp_path / "reacher.hdf5")
    args = bench.parse_args(["--datasets", str(path), "--seeds", "0", "1", "--segment-length", "10"])
    datasets = bench.prepare_datasets(args, tmp_path / "out")
    points = bench.build_grid(args, datasets)
    assert len(points) == len(bench.DEFAULT_AGENTS) * 2 and len({p.name for p in points}) == len(points)
    # seed-major: every agent's seed 0 before any seed 1, the agents in their row order within a seed
    assert [p.config["seed"] for p in points] == [0] * len(bench.DEFAULT_AGENTS) + [1] * len(bench.DEFAULT_AGENTS)
    assert [p.name.split("/")[1].split("__")[0] for p in points[: len(bench.DEFAULT_AGENTS)]] == [
        bench.run_prefix(a) for a in bench.DEFAULT_AGENTS]
    assert all(p.config["kind"] == "offline" and p.config["steps"] == bench.DEFAULT_STEPS for p in points)
    assert {p.config["eval_every"] for p in points} == {int(bench.EVAL_SHARE * bench.DEFAULT_STEPS)}
    label_keys = ("dataset", "task", "teacher", "teacher_kwargs", "total_feedback", "segment_length", "stratified")
    for seed in (0, 1):  # one label setting per seed and teacher: --teacher's, and the regret rows'
        same = {json.dumps([p.config[k] for k in label_keys]) for p in points if p.config["seed"] == seed}
        assert len(same) == 2 and {json.loads(x)[2] for x in same} == {"oracle", "regret"}
    assert {p.name.split("/")[1].split("__")[0] for p in points} == {bench.run_prefix(a) for a in bench.DEFAULT_AGENTS}


def test_bad_flags_stop_with_one_clear_error(bench, tmp_path):
    ok = ["--datasets", "collect:metaworld/reach-v3:scripted:100"]
    with pytest.raises(SystemExit, match="unknown agent"):
        bench.parse_args(ok + ["--agents", "dqn"])
    with pytest.raises(SystemExit, match="repeats"):
        bench.parse_args(ok + ["--agents", "pt_iql", "pt_iql"])
    with pytest.raises(SystemExit, match="make_datasets"):
        bench.parse_args(["--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="steps"):
        bench.parse_args(ok + ["--steps", "0"])
    with pytest.raises(SystemExit, match="eval-every"):
        bench.parse_args(ok + ["--eval-every", "0"])
    with pytest.raises(SystemExit, match="agent-kwargs"):
        bench.parse_args(ok + ["--agent-kwargs", "{oops"])
    with pytest.raises(SystemExit, match="collect:<task>"):
        bench.parse_args(["--datasets", "collect:metaworld/reach-v3"])
    with pytest.raises(SystemExit, match="does not exist"):
        bench.parse_args(["--datasets", str(tmp_path / "missing.hdf5")])


def test_default_datasets_are_the_two_curve_datasets_and_kinds_widen_the_grid(bench, tmp_path):
    for rel in ("hopper/medium.hdf5", "hopper/medium-replay.hdf5", "button-press/scripted-noisy.hdf5",
                "hopper/medium.prefs_oracle_500.h5", *(f"{rel}.hdf5" for rel in bench.DEFAULT_DATASETS)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    args = bench.parse_args(["--data-dir", str(tmp_path)])
    assert [Path(d).relative_to(tmp_path).as_posix() for d in args.datasets] == [
        "mujoco_Hopper-v5/medium-replay.hdf5", "metaworld_drawer-open-v3/scripted-noisy.hdf5"]
    args = bench.parse_args(["--data-dir", str(tmp_path), "--kinds", *bench.WIDE_KINDS])
    assert sorted(Path(d).relative_to(tmp_path).as_posix() for d in args.datasets) == [
        "button-press/scripted-noisy.hdf5", "hopper/medium-replay.hdf5",
        "metaworld_drawer-open-v3/scripted-noisy.hdf5", "mujoco_Hopper-v5/medium-replay.hdf5"]
    args = bench.parse_args(["--data-dir", str(tmp_path), "--kinds", "all"])
    assert len(args.datasets) == 5
    (tmp_path / "mujoco_Hopper-v5" / "medium-replay.hdf5").unlink()
    with pytest.raises(SystemExit, match="default datasets"):
        bench.parse_args(["--data-dir", str(tmp_path)])


def test_the_default_budget_is_the_measured_learning_curve_s_recommendation(bench):
    # benchmarks/offline_curve_d4rl/offline_curve.json is scripts/offline_curve.py's committed measurement on the
    # D4RL-sized Hopper medium-replay: DEFAULT_STEPS is its recommended_steps (at most the CPU cap), not a number of
    # its own
    curve = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "offline_curve_d4rl" / "offline_curve.json").read_text())
    assert bench.DEFAULT_STEPS == min(curve["recommended_steps"], bench.CPU_STEP_CAP)
    measured = {Path(d).parent.name + "/" + Path(d).stem for d in curve["settings"]["datasets"]}
    assert measured == {"mujoco_Hopper-v5/medium-replay"} and measured <= set(bench.DEFAULT_DATASETS)
    assert "pt_iql" in bench.DEFAULT_AGENTS  # the PT + IQL row (issue 17) at the measured budget


def test_agents_come_from_the_registry_at_their_defaults_plus_documented_cpu_changes(bench):
    from pbrl.agents.registry import agent_names, get_agent

    # every offline agent, no private list, plus the variant and teacher rows of registry agents
    assert sorted(v for a, v in bench.AGENTS.items() if a not in bench.VARIANTS and a not in bench.TEACHER_ROWS) \
        == agent_names("offline")
    assert bench.AGENTS["pt_iql"] == "mriql" and bench.run_prefix("pt_iql") == "pt_iql" and bench.run_prefix("iql_true") == "iql"
    assert bench.AGENTS["iql_true"] == "iql" and bench.agent_class("iql_true") is get_agent("iql")
    assert bench.agent_class("cpl") is get_agent("cpl") and not bench.needs_labels("bc")
    args = bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--steps", "1500"])
    cpl = bench.agent_kwargs("cpl", args)
    # the CPL recipe is CPL's own default now: the benchmark only shrinks sizes and scales the warmup
    assert cpl == {"hidden": (256, 256), "pair_batch_size": 32, "lr_warmup": 30}
    agent = bench.agent_class("cpl")(3, 2, **cpl)
    assert agent.policy_kind == "deterministic" and agent.lr == 1e-4 and agent.bc_fraction == 0.4
    # DTR's ensemble normalisation against plain averaging, and DPPO at the predictor's CPU size (issue 32)
    assert bench.AGENTS["mriql_zscore"] == "mriql" and bench.run_prefix("mriql_zscore") == "mriql_zscore"
    assert bench.agent_kwargs("mriql_zscore", args) == {"ensemble_normalization": "zscore", "reward_epochs": 100}
    assert bench.agent_kwargs("dppo", args) == {"predictor_kwargs": {"size": "small"}, "predictor_epochs": 100}
    assert bench.agent_class("dppo")(3, 2, **bench.agent_kwargs("dppo", args)).predictor.embed_dim == 64
    assert bench.agent_kwargs("oppo", args)["warmup_steps"] == 150
    # --hidden reaches every agent, --agent-kwargs wins over everything
    args = bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--hidden", "16", "16",
                             "--agent-kwargs", '{"cpl": {"lr_warmup": 0, "hidden": [8]}}'])
    assert bench.agent_kwargs("cplbc", args)["hidden"] == (16, 16) and bench.agent_kwargs("mriql", args)["hidden"] == (16, 16)
    assert bench.agent_kwargs("cpl", args)["lr_warmup"] == 0 and bench.agent_kwargs("cpl", args)["hidden"] == [8]


def test_ipl_on_metaworld_rows_get_the_authors_metaworld_configuration_from_the_hyperparameter_file(bench):
    """Issue 30, finding 6: the benchmark ran IPL on Meta-World with its locomotion settings."""
    args = bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100"])
    mw = bench.agent_kwargs("ipl", args, "metaworld/drawer-open-v3")
    assert {k: mw[k] for k in ("chi2_coeff", "expectile", "hidden", "target_clipping", "replay_weight",
                               "pref_batch_size", "segment_crop")} == \
        {"chi2_coeff": 3.0, "expectile": 0.75, "hidden": [256, 256, 256], "target_clipping": False,
         "replay_weight": 0.0, "pref_batch_size": 16, "segment_crop": 16}
    assert bench.agent_kwargs("ipl", args, "mujoco/Hopper-v5") == {}  # locomotion: the class defaults
    hidden = bench.parse_args(["--datasets", "collect:metaworld/reach-v3:scripted:100", "--hidden", "16", "16"])
    assert bench.agent_kwargs("ipl", hidden, "metaworld/drawer-open-v3")["hidden"] == (16, 16)  # flags win


def _runs(out, ds_slug):
    return {p.name: json.loads((p / "config.json").read_text()) for p in (out / ds_slug).iterdir() if p.is_dir()}


def test_the_pt_row_is_mriql_with_the_preference_transformer_in_run_directories_of_its_own(bench, tmp_path):
    out = tmp_path / "bench"
    small_pt = {"reward_epochs": 2, "reward_model_kwargs": {"embed_dim": 8, "pref_attn_dim": 8}}
    res = bench.main(TINY + ["--agents", "mriql", "pt_iql", "--steps", "40", "--eval-every", "20", "--out", str(out),
                             "--agent-kwargs", json.dumps({"mriql": {"reward_epochs": 2}, "pt_iql": small_pt})])
    assert not res["failures"]
    rows = res["per_dataset"]["mujoco/Reacher-v5/random"]
    assert set(rows) == {"mriql", "pt_iql"} and rows["pt_iql"]["curve"]["step"] == [20, 40]
    configs = _runs(out, "mujoco_Reacher-v5_random")
    mr, pt = "mriql__mujoco_Reacher-v5__oracle__b16__s0", "pt_iql__mujoco_Reacher-v5__oracle__b16__s0"
    assert set(configs) == {mr, pt}
    # the same registry agent on the same labels, the transformer as its reward model
    assert configs[mr]["agent"] == configs[pt]["agent"] == "mriql"
    assert configs[pt]["agent_kwargs"]["reward_model"] == "transformer" and "reward_model" not in configs[mr]["agent_kwargs"]
    assert res["settings"]["agent_kwargs"]["pt_iql"]["reward_model"] == "transformer"
    from pbrl.agents.iql import MRIQL

    agent = MRIQL.load(out / "mujoco_Reacher-v5_random" / pt / "agent.pt")
    assert agent.reward_model_name == "transformer" and type(agent.reward_model).__name__ == "PreferenceTransformer"
    # the pbrl report groups runs by their config's agent: the variant has its own, not pooled with mriql's
    rep = out / "report" / "mujoco_Reacher-v5_random"
    assert json.loads((rep / "report.json").read_text())["groups"]["mriql"]["n_runs"] == 1
    assert json.loads((rep / "pt_iql" / "report.json").read_text())["groups"]["mriql"]["n_runs"] == 1
    assert "PT + IQL" in res["table"]


def test_pearl_learns_from_the_next_same_domain_dataset_s_labels_end_to_end(bench, tmp_path):
    out = tmp_path / "bench"
    tiny_pearl = {"reward_epochs": 2, "n_target_pairs": 8, "gw_max_iter": 20, "reward_model_kwargs": {"hidden": [16]}}
    datasets = ["collect:mujoco/Reacher-v5:random:600", "collect:mujoco/HalfCheetah-v5:random:300"]
    argv = [x for x in TINY if x != "collect:mujoco/Reacher-v5:random:600"]
    argv[argv.index("--datasets") + 1:argv.index("--datasets") + 1] = datasets
    res = bench.main(argv + ["--agents", "pearl", "--steps", "20", "--eval-every", "20", "--out", str(out),
                             "--agent-kwargs", json.dumps({"pearl": tiny_pearl})])
    assert not res["failures"] and not res["skipped"]
    reacher, cheetah = "mujoco/Reacher-v5/random", "mujoco/HalfCheetah-v5/random"
    assert res["datasets"][reacher]["pearl_source"] == cheetah and res["datasets"][cheetah]["pearl_source"] == reacher
    assert set(res["per_dataset"][reacher]) == {"pearl"} and set(res["per_dataset"][cheetah]) == {"pearl"}
    # a Reacher run learns from HalfCheetah's labels (other sizes): the ones HalfCheetah's own runs of the seed draw
    from pbrl.envs.datasets import label_dataset, load_dataset
    from pbrl.preferences import PreferenceDataset
    from pbrl.teachers import make_teacher

    run = out / "mujoco_Reacher-v5_random" / "pearl__mujoco_Reacher-v5__oracle__b16__s0"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["labels"] == str((out / "_labels" / "mujoco_HalfCheetah-v5_random__oracle__b16__H10__s0.h5").resolve())
    got = PreferenceDataset.load(run / "labels.h5")
    want = label_dataset(load_dataset(res["datasets"][cheetah]["dataset"]), make_teacher("oracle", seed=0), 16,
                         segment_length=10, seed=0)
    assert got.a.obs_dim == 17 and np.array_equal(got.label, want.label) and np.array_equal(got.a.obs, want.a.obs)
    # one dataset alone has no source: PEARL is skipped there, with the reason
    alone = bench.main(["--datasets", datasets[0], "--agents", "pearl", "--seeds", "0", "--dry-run", "--out", str(out)])
    assert alone["points"] == [] and "no other-task dataset" in alone["skipped"][reacher]


def test_the_cpu_estimate_adds_updates_one_off_costs_and_evaluations():
    costs_mod = importlib.import_module("pbrl.app.offline_summary")
    costs = costs_mod.measured_costs()
    for row in ("iql_true", "mriql", "pt_iql", "pearl"):
        assert costs["agents"][row]["cpu_s_per_1k_updates"] > 0 and costs["agents"][row]["fixed_cpu_s"] >= 0
    assert set(costs["eval_cpu_s_per_episode"]) == {"metaworld", "locomotion"}
    assert costs_mod.n_evaluations(1500, 300) == 5 and costs_mod.n_evaluations(1000, 300) == 4
    rows, domains = ["mriql", "mriql", "pt_iql", "pt_iql"], ["locomotion", "metaworld"] * 2
    est = costs_mod.estimate_cpu_s(rows, domains, steps=2000, eval_every=500, eval_episodes=3)
    c, e = costs["agents"], costs["eval_cpu_s_per_episode"]
    want = {"updates_s": 2 * 2 * (c["mriql"]["cpu_s_per_1k_updates"] + c["pt_iql"]["cpu_s_per_1k_updates"]),
            "fixed_s": 2 * (c["mriql"]["fixed_cpu_s"] + c["pt_iql"]["fixed_cpu_s"]),
            "evaluations_s": 2 * 4 * 3 * (e["locomotion"] + e["metaworld"])}
    for k, v in want.items():
        assert est[k] == pytest.approx(v)
    assert est["cpu_s"] == pytest.approx(sum(want.values())) and est["unmeasured"] == []
    # a row nobody measured counts as the measured rows' mean, and says so
    other = costs_mod.estimate_cpu_s(["new_row"], ["metaworld"], 1000, 500, 1,
                                     {"agents": {"a": {"cpu_s_per_1k_updates": 10.0, "fixed_cpu_s": 4.0},
                                                 "b": {"cpu_s_per_1k_updates": 30.0, "fixed_cpu_s": 0.0}},
                                      "eval_cpu_s_per_episode": {}})
    assert other["cpu_s"] == pytest.approx(22.0) and other["unmeasured"] == ["new_row"]


def test_batch_seeds_trains_an_agent_s_seeds_in_one_process(bench, tmp_path):
    out = tmp_path / "bench"
    argv = list(TINY)
    argv[argv.index("--seeds") + 1:argv.index("--seeds") + 2] = ["0", "1"]
    bench.main(argv + ["--agents", "mriql", "--out", str(out), "--batch-seeds",
                       "--agent-kwargs", json.dumps({"mriql": {"reward_epochs": 2}})])
    runs = sorted((out / "mujoco_Reacher-v5_random").glob("mriql__*/metrics.json"))
    metrics = [json.loads(p.read_text()) for p in runs]
    assert [m["seed"] for m in metrics] == [0, 1] and all(m["seed_batch"] == 2 for m in metrics)


def test_locomotion_datasets_are_scored_on_d4rls_scale_not_their_own(bench, summary_mod, tmp_path):
    """A Hopper dataset whose metadata says its expert returned 580 (pbrl's old medium-replay) is scored with
    D4RL's references (random -20.27, expert 3234.3): a return of 343 is about 11, not 59."""
    from pbrl.envs.datasets import collect, save_d4rl

    ds = collect("mujoco/Hopper-v5", "random", n_steps=200, seed=0,
                 reference={"ref_min_return": 0.0, "ref_max_return": 580.0})
    path = save_d4rl(ds, tmp_path / "hopper.hdf5")
    args = bench.parse_args(["--datasets", str(path), "--seeds", "0"])
    (d,) = bench.prepare_datasets(args, tmp_path / "out")
    assert d["metric"] == "normalized_score" and d["ref"] == [-20.272305, 3234.3]
    score = summary_mod.score_fn(d)({"mean_return": 343.0, "success_rate": 0.0})
    assert score == pytest.approx(100 * (343.0 + 20.272305) / (3234.3 + 20.272305))


def test_cpl_and_cplbc_run_with_regret_labels_and_with_reward_sum_labels_as_separate_rows(bench, tmp_path, reacher_random):
    """CPL's own preference model (regret under an expert critic) beside --teacher's reward-sum labels: the
    regret rows copy CPL's and CPL-BC's settings, ask the regret teacher, and have run directories of their own."""
    from pbrl.envs.datasets import save_d4rl

    path = save_d4rl(reacher_random, tmp_path / "reacher.hdf5")
    args = bench.parse_args(["--datasets", str(path), "--seeds", "0", "--agents", "cpl", "cplbc", "cpl_regret",
                             "cplbc_regret", "--agent-kwargs", json.dumps({"cpl": {"alpha": 0.2}})])
    points = {p.name.split("/")[1].split("__")[0]: p for p in bench.build_grid(args, bench.prepare_datasets(args, tmp_path / "o"))}
    assert set(points) == {"cpl", "cplbc", "cpl_regret", "cplbc_regret"}
    for row, base in (("cpl_regret", "cpl"), ("cplbc_regret", "cplbc")):
        reg, plain = points[row].config, points[base].config
        assert reg["teacher"] == "regret" and plain["teacher"] == "oracle" and reg["agent"] == plain["agent"] == base
        assert reg["agent_kwargs"] == plain["agent_kwargs"]  # the same settings, --agent-kwargs included
        assert "__regret__" in points[row].name
    assert points["cpl_regret"].config["agent_kwargs"]["alpha"] == 0.2
    assert bench.DEFAULT_AGENTS[5:9] == ("cpl", "cplbc", "cpl_regret", "cplbc_regret")
