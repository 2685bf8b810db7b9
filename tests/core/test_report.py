"""`pbrl report` on fabricated run directories with known numbers."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pbrl.app.cli import app
from pbrl.app.report import build_report
from pbrl.app.runs import RunDir


def _fake_run(root: Path, agent: str, task: str, seed: int, final: float, curve: list[tuple[int, int, float]],
              finished: bool = True) -> Path:
    d = root / f"{agent}_{task.replace('/', '_')}_s{seed}"
    d.mkdir(parents=True)
    cfg = {"kind": "online", "task": task, "agent": agent, "teacher": "oracle", "total_feedback": 100, "seed": seed}
    (d / "config.json").write_text(json.dumps(cfg))
    rd = RunDir(d)
    rd.write_status("finished" if finished else "running")
    rd.write_curve([{"step": s, "labels": n, "mean_return": r, "std_return": 0.0, "success_rate": 0.0,
                     "normalized_score": None} for s, n, r in curve])
    if finished:
        rd.write_metrics({"final": {"mean_return": final, "std_return": 0.0, "success_rate": 0.0,
                                    "normalized_score": None}})
    return d


@pytest.fixture
def runs_root(tmp_path):
    # agent "alpha": HalfCheetah seeds score 0 and 1, Hopper seeds score 5, 5, 5
    # agent "beta": every run scores 10
    for seed, r in enumerate([0.0, 1.0]):
        _fake_run(tmp_path, "alpha", "mujoco/HalfCheetah-v5", seed, r, [(0, 0, 0.0), (100, 50, r / 2), (200, 100, r)])
    for seed in range(3):
        _fake_run(tmp_path, "alpha", "mujoco/Hopper-v5", seed, 5.0, [(0, 0, 1.0), (100, 50, 3.0), (200, 100, 5.0)])
    for seed in range(2):
        for task in ("mujoco/HalfCheetah-v5", "mujoco/Hopper-v5"):
            _fake_run(tmp_path, "beta", task, seed, 10.0, [(0, 0, 10.0), (200, 100, 10.0)])
    _fake_run(tmp_path, "beta", "mujoco/Hopper-v5", 9, -100.0, [(0, 0, -100.0)], finished=False)
    return tmp_path


def test_report_numbers_by_hand(runs_root, tmp_path):
    res = build_report([runs_root], score="return", out=tmp_path / "rep", n_resamples=4000)
    a = res["groups"]["alpha"]
    assert a["n_runs"] == 5 and a["tasks"] == ["mujoco/HalfCheetah-v5", "mujoco/Hopper-v5"]
    # pooled [0, 1, 5, 5, 5]: IQM trims one score at each end -> mean(1, 5, 5) = 11/3.
    # stratified resampling only moves HalfCheetah's pair: {0,0} (1/4) -> IQM mean(0,5,5) = 10/3,
    # {0,1} or {1,1} (3/4) -> 11/3; so the 95 % percentile interval is [10/3, 11/3].
    assert a["iqm"]["value"] == pytest.approx(11 / 3)
    assert a["iqm"]["low"] == pytest.approx(10 / 3) and a["iqm"]["high"] == pytest.approx(11 / 3)
    # the mean (k + 15) / 5 with k ~ Binomial(2, 1/2): 3.2 in [3.0, 3.4]
    assert (a["mean"]["value"], a["mean"]["low"], a["mean"]["high"]) == pytest.approx((3.2, 3.0, 3.4))
    assert a["median"]["value"] == pytest.approx(5.0)
    b = res["groups"]["beta"]
    assert b["n_runs"] == 4 and (b["iqm"]["value"], b["iqm"]["low"], b["iqm"]["high"]) == (10.0, 10.0, 10.0)
    # the unfinished run is left out and named
    assert len(res["skipped"]) == 1 and "s9" in res["skipped"][0]
    for name in ("report.png", "curves_steps.png", "curves_labels.png", "profile.png", "intervals.png"):
        p = tmp_path / "rep" / name
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["groups"]["alpha"]["iqm"]["value"] == pytest.approx(11 / 3)


def test_report_cli_prints_table(runs_root, tmp_path):
    res = CliRunner().invoke(app, ["report", str(runs_root), "--out", str(tmp_path / "r2"), "--score", "return",
                                   "--resamples", "4000"])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "3.667 [3.333, 3.667]" in flat  # alpha's IQM and interval
    assert "3.200 [3.000, 3.400]" in flat  # alpha's mean
    assert "10.000 [10.000, 10.000]" in flat  # beta
    assert "skipped (not finished)" in flat


def test_learning_curves_and_profile(runs_root):
    from pbrl.app.report import _group_curve, load_runs

    recs = [r for r in load_runs([runs_root]) if r.config["agent"] == "alpha"]
    tasks = sorted({r.task for r in recs})
    x, y, lo, hi = _group_curve(recs, tasks, "step", "mean_return", 500, 0.95, 0)
    np.testing.assert_array_equal(x, [0, 100, 200])
    # step 0: [0, 0, 1, 1, 1] -> IQM mean(0, 1, 1) = 2/3 ; step 100: [0, 0.5, 3, 3, 3] -> mean(0.5, 3, 3)
    assert y[0] == pytest.approx(2 / 3) and y[1] == pytest.approx(6.5 / 3) and y[2] == pytest.approx(11 / 3)
    assert np.all(lo <= y + 1e-12) and np.all(hi >= y - 1e-12)
    xl, yl, _, _ = _group_curve(recs, tasks, "labels", "mean_return", 200, 0.95, 0)
    np.testing.assert_array_equal(xl, [0, 50, 100])
    np.testing.assert_allclose(yl, y)


def test_report_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no run directories" in res.output
    with pytest.raises(ValueError, match="cannot group by 'colour'; allowed keys: agent"):
        build_report([tmp_path], group_by=("colour",))
    with pytest.raises(ValueError, match="unknown score 'elo'"):
        build_report([tmp_path], score="elo")


def test_copies_of_one_run_are_counted_once_with_a_warning(tmp_path):
    import shutil

    a = _fake_run(tmp_path / "sweep", "alpha", "mujoco/Hopper-v5", 0, 1.0, [(0, 0, 0.0), (100, 50, 1.0)])
    _fake_run(tmp_path / "sweep", "alpha", "mujoco/Hopper-v5", 1, 3.0, [(0, 0, 0.0), (100, 50, 3.0)])
    shutil.copytree(a, tmp_path / "backup" / a.name)  # the same run (seed 0) copied elsewhere
    res = build_report([tmp_path], score="return", n_resamples=200)
    g = res["groups"]["alpha"]
    assert g["n_runs"] == 2 and sorted(g["per_task"]["mujoco/Hopper-v5"]) == [1.0, 3.0]
    assert len(res["warnings"]) == 1 and "same task, seed and settings" in res["warnings"][0]
    out = CliRunner().invoke(app, ["report", str(tmp_path), "--score", "return", "--resamples", "50",
                                   "-o", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    assert "warning:" in out.output and "counted once" in " ".join(out.output.split())


def test_locomotion_scores_are_on_d4rls_scale_whatever_the_run_wrote(tmp_path):
    """A Hopper run whose files hold a score normalised by its dataset's own expert (580, as pbrl's old
    benchmark did: 59.2 for a return of 343) is reported on D4RL's scale; a Meta-World run keeps its own."""
    from pbrl.envs.datasets import D4RL_REF_SCORES

    lo, hi = D4RL_REF_SCORES["hopper"]
    for seed in range(2):
        d = _fake_run(tmp_path, "iql", "mujoco/Hopper-v5", seed, 343.0, [(0, 0, 100.0), (100, 0, 343.0)])
        rd = RunDir(d)
        rd.write_curve([{"step": 100, "labels": 0, "mean_return": 343.0, "std_return": 0.0, "success_rate": 0.0,
                         "normalized_score": 59.2}])
        rd.write_metrics({"final": {"mean_return": 343.0, "std_return": 0.0, "success_rate": 0.0,
                                    "normalized_score": 59.2}})
    res = build_report([tmp_path], score="auto")
    want = 100 * (343.0 + 20.272305) / (3234.3 + 20.272305)
    assert res["score"] == "normalized" and (lo, hi) == (-20.272305, 3234.3)
    assert res["groups"]["iql"]["iqm"]["value"] == pytest.approx(want)  # about 11.2, not 59.2
    assert res["groups"]["iql"]["iqm"]["value"] < 12.0


def test_probability_of_improvement_over_a_baseline_and_the_optimality_gap(runs_root, tmp_path):
    res = build_report([runs_root], score="return", out=tmp_path / "rep", n_resamples=500, baseline="alpha")
    # every beta run (10) beats every alpha run (0, 1 on HalfCheetah; 5 on Hopper) on both tasks
    poi = res["groups"]["beta"]["poi"]
    assert (poi["value"], poi["low"], poi["high"], poi["baseline"]) == (1.0, 1.0, 1.0, "alpha")
    assert poi["tasks"] == ["mujoco/HalfCheetah-v5", "mujoco/Hopper-v5"] and "poi" not in res["groups"]["alpha"]
    assert (tmp_path / "rep" / "improvement.png").read_bytes()[:4] == b"\x89PNG"
    assert "optimality_gap" not in res["groups"]["beta"]  # a return has no target
    # success rates (all 0 here) have the target 1: the gap is 1
    ok = build_report([runs_root], score="success", n_resamples=200)
    assert ok["groups"]["alpha"]["optimality_gap"]["value"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not a group of this report; the groups are: alpha, beta"):
        build_report([runs_root], baseline="gamma", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    cli = CliRunner().invoke(app, ["report", str(runs_root), "--out", str(tmp_path / "r3"), "--score", "return",
                                   "--resamples", "200", "--baseline", "alpha"])
    assert cli.exit_code == 0, cli.output
    assert "beta: iqm" in cli.output and "poi 1.000 [1.000, 1.000]" in cli.output  # the greppable line
    bad = CliRunner().invoke(app, ["report", str(runs_root), "--out", str(tmp_path / "r4"), "--baseline", "gamma"])
    assert bad.exit_code == 2 and "alpha, beta" in bad.output
