"""pbrl.app.bench, the benchmark harness: the export of a study's runs to runs.csv / curves.csv and their rebuild
without the run directories, the common flags (--set, --seeds), an in-process study's resume, and a study
summarised from its CSVs alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pbrl.app.bench import (
    CURVES_CSV,
    RUNS_CSV,
    Study,
    export,
    interval,
    load_records,
    merge_overrides,
    parse_args,
    run_study,
    study_grid,
)
from pbrl.app.run_dir import RunDir
from pbrl.app.sweep import expand_grid


def _run(root: Path, name: str, agent: str, seed: int, finals: list[float], extra: str | None = None,
         state: str = "finished") -> None:
    """A run directory as a sweep leaves it: config, status, curve (``extra``: a column only this run has), metrics."""
    rd = RunDir(root / name)
    rd.path.mkdir(parents=True)
    cfg = {"kind": "online", "agent": agent, "task": "mujoco/Reacher-v5", "teacher": "oracle", "total_feedback": 10,
           "seed": seed, "reward_model_kwargs": {"hidden": [16]}}
    rd.config_path.write_text(json.dumps(cfg))
    rd.write_status(state, **({"error": "ValueError: boom"} if state == "failed" else {}))
    rows = [{"step": 100 * (i + 1), "labels": 5 * i, "mean_return": f, "std_return": 1.0, "success_rate": 0.0,
             "normalized_score": None, **({extra: 0.5 + i} if extra else {})} for i, f in enumerate(finals)]
    rd.write_curve(rows)
    if state == "finished":
        rd.write_metrics({"final": {"mean_return": finals[-1], "success_rate": 0.0, "normalized_score": None},
                          "cpu_time_s": 60.0 * (seed + 1), "feedback_time_s": {"fit": 1.5}, "steps": 200})


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
                                        for x, y in ((a[k], b[k]) for k in a))


def test_export_then_rebuild_without_the_run_directories(tmp_path):
    out = tmp_path / "study"
    _run(out, "pebble__a__s0", "pebble", 0, [1.0, 2.0], extra="reward_saturated")
    _run(out, "sac__a__s0", "sac", 0, [3.0, 4.0])
    _run(out, "ds/pebble__b__s1", "pebble", 1, [5.0])  # an offline study's <dataset>/<run> layout
    _run(out, "pebble__c__s2", "pebble", 2, [6.0], state="failed")
    before = {r.name: r for r in load_records(out)}
    res = export(out)
    assert res == {"runs": 4, "curve_rows": 6, "files": [str(out / RUNS_CSV), str(out / CURVES_CSV)]}
    header = (out / CURVES_CSV).read_text().splitlines()[0].split(",")
    assert header == ["run", "step", "labels", "mean_return", "std_return", "success_rate", "normalized_score",
                      "reward_saturated"]  # every extra column once
    for p in list(out.rglob("config.json")):  # a clean clone: the CSVs only
        for f in p.parent.iterdir():
            f.unlink()
        p.parent.rmdir()
    after = {r.name: r for r in load_records(out)}
    assert sorted(after) == sorted(before) == ["ds/pebble__b__s1", "pebble__a__s0", "pebble__c__s2", "sac__a__s0"]
    for name, b in before.items():
        a = after[name]
        assert (a.config, a.status, a.metrics, a.error) == (b.config, b.status, b.metrics, b.error)
        assert len(a.curve) == len(b.curve) and all(_same(x, y) for x, y in zip(a.curve, b.curve)), name
        assert not a.path.exists()
    assert "reward_saturated" not in after["sac__a__s0"].curve[0]  # the other run's column is not added to this one
    assert after["pebble__c__s2"].error == "ValueError: boom"
    assert load_records(out, ["sac__a__s0", "nope"])[0].name == "sac__a__s0"


def test_a_run_directory_wins_over_its_exported_row(tmp_path):
    out = tmp_path / "study"
    _run(out, "sac__a__s0", "sac", 0, [1.0], state="running")
    export(out)
    RunDir(out / "sac__a__s0").write_status("finished")
    RunDir(out / "sac__a__s0").write_metrics({"final": {"mean_return": 9.0}})
    (rec,) = load_records(out)
    assert rec.status == "finished" and rec.final("mean_return") == 9.0


def _summarise(ctx):
    cols = {}
    for r in ctx.records:
        cols.setdefault(r.config["agent"], []).append(r.final("mean_return"))
    return {"source": ctx.source, "iqm": {a: interval([v])["value"] for a, v in sorted(cols.items())}}


def _grid(a):
    base = {"kind": "online", "total_timesteps": 200, "eval_every": 100, "n_eval_episodes": 1, "segment_length": 10,
            "feedback_every": 100}
    return expand_grid(base, tasks=["mujoco/Reacher-v5"], agents=["sac"], teachers=["oracle"], seeds=a.seed_list)


STUDY = Study(name="toy", description="A toy study.", out=None, result_file="toy.json", summarise=_summarise,
              grid=_grid, seeds=2, only_grid=False)


def test_report_only_summarises_from_the_csvs_alone(tmp_path, capsys):
    out = tmp_path / "toy"
    _run(out, "sac__a__s0", "sac", 0, [1.0, 3.0])
    _run(out, "sac__a__s1", "sac", 1, [5.0])
    export(out)
    from_dirs = run_study(STUDY, ["--out", str(out), "--report-only"])
    for d in [p for p in out.iterdir() if p.is_dir()]:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    from_csv = run_study(STUDY, ["--out", str(out), "--report-only"])
    assert from_dirs["iqm"] == from_csv["iqm"] == {"sac": 4.0}
    assert (from_dirs["source"], from_csv["source"]) == ("run directories", "runs.csv")
    assert json.loads((out / "toy.json").read_text())["iqm"] == {"sac": 4.0}


def test_common_flags(tmp_path):
    a = parse_args(STUDY, ["--out", "x", "--seeds", "3", "--set", '{"reward_model_kwargs": {"hidden": [8]}}'])
    assert a.seed_list == [0, 1, 2] and a.workers == 2 and a.overrides == {"reward_model_kwargs": {"hidden": [8]}}
    listed = Study(name="t", description="t", out="o", result_file=None, summarise=_summarise, seeds=(0, 1))
    assert parse_args(listed, ["--seeds", "4", "7"]).seed_list == [4, 7]
    assert merge_overrides({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "b": 2}) == {"a": {"x": 1, "y": 3}, "b": 2}
    for bad in (["--set", "[1]"], ["--set", "{nope"], ["--set", '{"seed": 3}'], ["--seeds", "0"], ["--workers", "0"]):
        with pytest.raises(SystemExit) as e:
            parse_args(STUDY, ["--out", "x", *bad])
        assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        parse_args(listed, ["--seeds", "1", "1"])
    assert e.value.code == 2


def test_set_reaches_every_point_and_a_bad_value_stops_before_any_work(tmp_path, capsys):
    out = tmp_path / "toy"
    argv = ["--out", str(out), "--set", '{"n_eval_episodes": 3, "reward_model_kwargs": {"hidden": [8]}}']
    points = study_grid(STUDY, parse_args(STUDY, argv))
    assert [p.config["n_eval_episodes"] for p in points] == [3, 3]
    assert [p.config["reward_model_kwargs"]["hidden"] for p in points] == [[8], [8]]
    res = run_study(STUDY, [*argv, "--dry-run"])
    assert res["points"] == [p.name for p in points] and len(points) == 2
    with pytest.raises(SystemExit) as e:
        run_study(STUDY, ["--out", str(out), "--set", '{"n_eval_episodes": -1}'])
    assert e.value.code == 2 and "n_eval_episodes" in capsys.readouterr().err and not out.exists()


def test_an_in_process_study_resumes_from_its_runs_csv(tmp_path, capsys):
    calls = []

    def run_unit(a, unit):
        calls.append(unit["run"])
        return {"score": float(unit["seed"] + unit["size"]), "curve": [{"step": 1, "mean_return": 1.0}]}

    study = Study(name="inproc", description="In process.", out=None, result_file="inproc.json",
                  summarise=lambda ctx: {"scores": [r.metrics["score"] for r in ctx.records]},
                  units=lambda a: [{"run": f"u{s}", "seed": s, "size": a.size} for s in a.seed_list],
                  run_unit=run_unit, seeds=2,
                  arguments=lambda p: p.add_argument("--size", type=int, default=10))
    out = tmp_path / "inproc"
    assert run_study(study, ["--out", str(out)]) == {"scores": [10.0, 11.0]}
    assert run_study(study, ["--out", str(out), "--seeds", "3"]) == {"scores": [10.0, 11.0, 12.0]}
    assert calls == ["u0", "u1", "u2"]  # the second call ran the new unit only
    assert run_study(study, ["--out", str(out), "--seeds", "4", "--report-only"]) == {"scores": [10.0, 11.0, 12.0]}
    assert calls == ["u0", "u1", "u2"]  # --report-only runs nothing
    assert (out / CURVES_CSV).read_text().count("u2") == 1
    with pytest.raises(SystemExit) as e:  # other settings for a unit already there
        run_study(study, ["--out", str(out), "--size", "5"])
    assert e.value.code == 2 and "size" in capsys.readouterr().err


def test_the_result_file_names_no_absolute_path_under_the_working_folder(tmp_path, monkeypatch):
    """A study's result once recorded ``/work/main/benchmarks/...`` (its resolved ``--out``) in committed JSON."""
    monkeypatch.chdir(tmp_path)
    study = Study(name="paths", description="Paths.", out=None, result_file="paths.json",
                  summarise=lambda ctx: {"out": str(ctx.out.resolve()), "plot": str(ctx.out.resolve() / "p.png")},
                  units=lambda a: [{"run": "u0", "seed": 0}], run_unit=lambda a, unit: {"curve": []}, seeds=1)
    res = run_study(study, ["--out", str(tmp_path / "paths")])
    assert res["out"] == str(tmp_path / "paths")  # the returned result keeps what the summary gave
    assert json.loads((tmp_path / "paths" / "paths.json").read_text()) == {"out": "paths", "plot": "paths/p.png"}
