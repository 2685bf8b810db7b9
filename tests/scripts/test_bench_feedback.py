"""scripts/bench_feedback.py: the grid it builds, and a tiny end-to-end study through pbrl sweep + report."""

from __future__ import annotations

import json

import pytest
from helpers import load_script

from pbrl.app import feedback_summary


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_feedback")


def test_default_grid_sac_control_agents_and_the_std_variant(bench):
    a = bench.parse_args([])
    assert a.seeds == 5 and a.budgets == [1000] and a.feedback_every == 5000
    points = bench.build_grid(a)
    names = [p.name for p in points]
    assert len(names) == len(set(names))
    for row in ("sac", "pebble_true"):
        mine = [n for n in names if n.startswith(f"{row}__")]
        assert len(mine) == len(a.tasks) * a.seeds and all("__b0__" in n for n in mine)
    labels = {feedback_summary.row_label(p.config) for p in points}
    assert labels == {"sac", "pebble_true", *bench.PBRL_AGENTS, "pebble-std"}
    std = [p for p in points if feedback_summary.row_label(p.config) == "pebble-std"]
    assert len(std) == len(a.tasks) * a.seeds and all(p.name.startswith("pebble-std__") for p in std)
    assert all(p.config["reward_model_kwargs"]["normalize"] is True for p in std)
    raw = [p for p in points if p.config["agent"] in bench.PBRL_AGENTS and not p.name.startswith("pebble-std")]
    assert all(not p.config["reward_model_kwargs"].get("normalize", False) for p in raw)
    assert not [n for n in names if "__mistake__" in n or "__scripted__" in n]  # cut to fit the CPU budget
    noisy = [p for p in bench.build_grid(bench.parse_args(["--noisy"])) if p.config["teacher"] != "oracle"]
    assert len(noisy) == 2 * len(bench.ROBUST_AGENTS) * a.seeds
    high = [p for p in noisy if p.config["teacher"] == "scripted"]
    assert all(p.config["teacher_kwargs"] == {"eps_mistake": 0.3} for p in high)
    assert feedback_summary.teacher_label(high[0].config) == "scripted-eps0.3"
    with pytest.raises(SystemExit):
        bench.parse_args(["--agents", "pebbel"])


def test_queries_follow_b_prefs_schedule_to_the_end_of_the_run(bench):
    """The old study asked its labels in 10 rounds every 2,500 steps from step 10k, so the reward was frozen
    for the last 35 % of the run; B-Pref asks a round every 5,000 steps until the end."""
    from pbrl.online.feedback import session_steps

    a = bench.parse_args([])
    p = next(p for p in bench.build_grid(a) if p.config["agent"] == "pebble")
    per, every, budget = p.config["feedback_per_session"], p.config["feedback_every"], p.config["total_feedback"]
    rounds = session_steps(a.steps, 10_000, every)
    assert rounds == list(range(10_000, 50_000, 5_000))
    # the budget lasts until the last round, and that round is in the run's last tenth
    assert per * (len(rounds) - 1) < budget <= per * len(rounds)
    assert rounds[-1] >= 0.9 * a.steps - 1


def test_dry_run_projects_the_cpu_time_from_finished_runs(bench, tmp_path, capsys):
    argv = ["--agents", "sac", "pebble", "--seeds", "1", "--std-agents", "--out", str(tmp_path)]
    points = bench.build_grid(bench.parse_args(argv))
    (tmp_path / points[0].name).mkdir()
    (tmp_path / points[0].name / "metrics.json").write_text(json.dumps({"cpu_time_s": 600.0}))
    bench.main([*argv, "--dry-run"])
    out = capsys.readouterr().out
    assert "1 finished; CPU-min per run: sac 10.0" in out
    assert f"the other {len(points) - 1} runs: about {(len(points) - 1) * 600 / 3600:.1f} CPU-h" in out


def test_sac_alone_is_only_sac_runs(bench):
    a = bench.parse_args(["--agents", "sac", "--seeds", "1"])
    names = [p.name for p in bench.build_grid(a)]
    assert names and all(n.startswith("sac__") for n in names), names


def test_a_tiny_study_runs_resumes_and_reports(bench, tmp_path, capsys):
    argv = ["--tasks", "mujoco/Reacher-v5", "--agents", "sac", "pebble", "--budgets", "6", "--seeds", "1",
            "--steps", "300", "--feedback-every", "125", "--eval-every", "150",
            "--n-eval-episodes", "1", "--std-agents", "--workers", "2", "--out", str(tmp_path / "study"),
            "--set", json.dumps({"segment_length": 10, "agent_kwargs": {"unsup_steps": 50, "fit_kwargs": {"epochs": 2}},
                                 "learner_kwargs": {"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}},
                                 "reward_model_kwargs": {"hidden": [16]}})]
    res = bench.main(argv)
    table = res["table"]
    assert set(table) == {"sac/0/oracle", "pebble/6/oracle"}
    poi = table["sac/0/oracle"]["poi_vs_pebble"]  # every row against PEBBLE on the tasks both ran
    assert 0.0 <= poi["low"] <= poi["value"] <= poi["high"] <= 1.0 and poi["baseline"] == "pebble/6/oracle"
    assert "poi_vs_pebble" not in table["pebble/6/oracle"]
    assert table["sac/0/oracle"]["vs_sac"] == pytest.approx(1.0) or table["sac/0/oracle"]["iqm"]["value"] == 0.0
    saved = json.loads((tmp_path / "study" / "feedback.json").read_text())
    assert saved["table"].keys() == table.keys()
    assert (tmp_path / "study" / "report" / "report.json").exists()
    # the study's own figure and the per-task table (one seed: each cell is that seed's final success)
    assert (tmp_path / "study" / "feedback.png").stat().st_size > 10_000
    assert set(saved["per_task"]["pebble/6/oracle"]) == {"mujoco/Reacher-v5"}
    assert "| pebble | 6 | oracle | " in capsys.readouterr().out
    mtimes = {p: p.stat().st_mtime for p in (tmp_path / "study").glob("*/metrics.json")}
    bench.main(argv)  # a second call skips the finished runs
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes


def test_a_study_with_only_sac_finished_still_reports(bench, tmp_path):
    out = tmp_path / "study"
    res = bench.main(["--tasks", "mujoco/Reacher-v5", "--agents", "sac", "--seeds", "1", "--steps", "200",
                      "--eval-every", "100", "--n-eval-episodes", "1", "--workers", "1",
                      "--out", str(out), "--set", json.dumps({"learner_kwargs": {
                          "learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}}})])
    assert set(res["table"]) == {"sac/0/oracle"} and res["figure"] is None  # nothing to compare yet: no figure
    assert (out / "feedback.json").exists()


def test_calibrate_runs_sac_alone_and_tables_each_task(bench, tmp_path, capsys):
    a = bench.parse_args(["--calibrate"])
    assert a.agents == ["sac"] and a.seeds == 1 and a.tasks == list(bench.CALIBRATION_TASKS)
    assert len(a.tasks) >= 10 and all(t.endswith(":goal=hidden") for t in a.tasks)  # B-Pref's Meta-World envs
    out = tmp_path / "calib"
    res = bench.main(["--calibrate", "--tasks", "mujoco/Reacher-v5", "--steps", "200", "--eval-every", "100",
                      "--n-eval-episodes", "1", "--workers", "1", "--out", str(out),
                      "--set", json.dumps({"learner_kwargs": {"learning_starts": 50, "batch_size": 32,
                                                              "policy_kwargs": {"net_arch": [16]}}})])
    row = res["calibration"]["mujoco/Reacher-v5"]
    assert row["steps"][-2:] == [100, 200] and row["solved"] is False  # Reacher reports no success
    saved = json.loads((out / "calibration.json").read_text())
    assert saved["threshold"] == feedback_summary.CALIBRATION_THRESHOLD and "mujoco/Reacher-v5" in saved["tasks"]
    assert "| mujoco/Reacher-v5 | 0.0 0.0" in capsys.readouterr().out


def test_default_tasks_are_the_ones_the_calibration_solved(bench):
    """The study's tasks are chosen by measurement: each default task passed the committed calibration
    (SAC-true >= 0.8 success at the end of the budget), at least 3 of them, with the goal hidden as in B-Pref."""
    from pathlib import Path

    cal = json.loads((Path(__file__).resolve().parents[2] / "benchmarks/calib_sac/calibration.json").read_text())
    solved = {t for t, v in cal["tasks"].items() if v["solved"]}
    assert len(bench.DEFAULT_TASKS) >= 3 and set(bench.DEFAULT_TASKS) <= solved
    assert all(t.endswith(":goal=hidden") for t in bench.DEFAULT_TASKS)
    assert cal["steps"] == bench.parse_args([]).steps


def test_costs_pair_each_run_with_sac_true_on_its_task_and_seed(tmp_path):
    from pbrl.app.report import RunRecord

    def rec(agent, task, seed, cpu, fit=0.0, budget=0):
        cfg = {"agent": agent, "task": task, "seed": seed, "teacher": "oracle", "total_feedback": budget}
        return RunRecord(tmp_path, cfg, "finished", {"cpu_time_s": cpu, "feedback_time_s": {"fit": fit}})

    runs = [rec("sac", "a", 0, 100.0), rec("sac", "a", 1, 200.0), rec("sac", "b", 0, 50.0),
            rec("pebble", "a", 0, 120.0, fit=7.0, budget=10), rec("pebble", "a", 1, 300.0, fit=9.0, budget=10),
            rec("pebble", "b", 0, 60.0, fit=8.0, budget=10),
            rec("surf", "b", 1, 999.0, budget=10),  # no SAC-true run on b, seed 1: left out
            RunRecord(tmp_path, {"agent": "rime", "task": "a", "seed": 0, "total_feedback": 10}, "running", None)]
    res = feedback_summary.costs(runs)
    assert set(res) == {"sac/0/oracle", "pebble/10/oracle"}
    p = res["pebble/10/oracle"]
    assert p["n"] == 3 and p["ratio_median"] == pytest.approx(1.2)  # ratios 1.2, 1.5, 1.2
    assert (p["ratio_min"], p["ratio_max"]) == (pytest.approx(1.2), pytest.approx(1.5))
    assert p["parts_s"]["fit"] == pytest.approx(8.0) and res["sac/0/oracle"]["ratio_median"] == 1.0
    assert "| pebble/10/oracle | 3 | 1.20x [1.20, 1.50] |" in feedback_summary.markdown_costs(res)


def test_the_main_table_and_figure_lead_with_each_task_s_iqm_and_order_the_rows(tmp_path):
    """The issue's order: per-task IQM with 95 % intervals first, the pooled IQM only beside them; the true-reward
    references first, then PEBBLE and its variants."""
    from pbrl.app.report import RunRecord

    def rec(agent, task, seed, success, budget=10, std=False):
        cfg = {"agent": agent, "task": f"metaworld/{task}-v3:goal=hidden", "seed": seed, "teacher": "oracle",
               "total_feedback": budget, "reward_model_kwargs": {"normalize": True} if std else {}}
        return RunRecord(tmp_path / f"{agent}{std}{task}{seed}", cfg, "finished",
                         {"cpu_time_s": 60.0, "final": {"success_rate": success}}, [{"step": 50, "success_rate": success}])

    runs = [rec(a, t, s, x) for a, xs in (("surf", (1.0, 0.0)), ("pebble", (0.0, 0.0)), ("rime", (0.5, 0.5)))
            for t, x in zip(("button-press", "drawer-close"), xs) for s in (0, 1)]
    runs += [rec("sac", t, s, 1.0, budget=0) for t in ("button-press", "drawer-close") for s in (0, 1)]
    runs += [rec("pebble", t, s, 0.5, std=True) for t in ("button-press", "drawer-close") for s in (0, 1)]
    table = feedback_summary.summarise_runs(runs)
    lines = feedback_summary.markdown(table).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[4:7] == ["button-press: IQM [95 % CI]", "drawer-close: IQM [95 % CI]", "pooled IQM [95 % CI]"]
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["sac", "pebble", "pebble-std", "surf", "rime"]
    surf = [c.strip() for c in lines[5].strip("|").split("|")]
    assert surf[4:6] == ["1.00 [1.00, 1.00]", "0.00 [0.00, 0.00]"]  # each task's own IQM, not the pooled one
    path = feedback_summary.plot_intervals(table, tmp_path / "iqm.png")
    assert path is not None and path.stat().st_size > 10_000
