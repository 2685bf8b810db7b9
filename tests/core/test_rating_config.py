"""Ratings through configs, `pbrl train` and `pbrl sweep`: `teacher: rating` with `n_classes`, an offline
`labels` file; every bad combination stops before any work with one clear line (exit code 2)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from pbrl.app.cli import app
from pbrl.app.config import config_from_dict
from pbrl.app.sweep import expand_grid
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.segments import Segments

runner = CliRunner()


def _segs(n=4, obs_dim=11, act_dim=3):
    rng = np.random.default_rng(0)
    return Segments(obs=rng.normal(size=(n, 5, obs_dim)), act=rng.normal(size=(n, 5, act_dim)), reward=np.zeros((n, 5)))


def test_rating_config_builds_the_teacher_and_names_the_run():
    cfg = config_from_dict({"teacher": "rating", "n_classes": 4, "teacher_kwargs": {"eps_mistake": 0.1}})
    assert cfg.teacher_options() == {"eps_mistake": 0.1, "n_classes": 4}
    assert cfg.teacher_tag() == "rating-n4"
    assert config_from_dict({"teacher": "rating"}).teacher_tag() == "rating-n3"
    assert config_from_dict({}).teacher_tag() == "oracle"
    off = config_from_dict({"teacher": "rating", "n_classes": 2}, kind="offline")
    assert off.teacher_options() == {"n_classes": 2}


@pytest.mark.parametrize(
    "data, kind, match",
    [
        ({"teacher": "rating", "agent": "surf"}, "online", "agent 'surf' learns from preference pairs.*pebble, pref_ppo, rune"),
        ({"teacher": "rating", "agent": "rime"}, "online", "agent 'rime' learns from preference pairs"),
        ({"teacher": "rating", "selector": "entropy"}, "online", "selector 'entropy' for rating queries.*disagreement, uniform"),
        ({"teacher": "oracle", "n_classes": 3}, "online", "n_classes applies to the rating teacher only"),
        ({"teacher": "rating", "n_classes": 1}, "online", "n_classes must be >= 2"),
        ({"teacher": "rating", "teacher_kwargs": {"n_classes": 3}}, "online", "use the config key 'n_classes'"),
        ({"teacher": "rating", "teacher_kwargs": {"bins": [5.0, 1.0]}}, "online", "strictly increasing"),
        ({"teacher": "rating", "teacher_kwargs": {"beta": 1.0}}, "online", "unknown key 'beta' in teacher_kwargs"),
        ({"teacher": "rating", "agent": "cpl"}, "offline", "agent 'cpl' learns from preference pairs.*mriql"),
        ({"teacher": "rating", "agent": "pearl"}, "offline", "agent 'pearl' learns from preference pairs"),
        ({"labels": "missing.h5"}, "offline", "labels file 'missing.h5' does not exist"),
    ],
)
def test_bad_rating_configs_name_the_problem(data, kind, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict(dict(data), kind=kind)


def test_agents_without_labels_ignore_a_rating_teacher():
    assert config_from_dict({"teacher": "rating", "agent": "iql"}, kind="offline").agent == "iql"


def test_offline_labels_file_is_checked_before_any_work(tmp_path):
    ratings = RatingDataset(_segs(), [0, 1, 2, 0], 3).save(tmp_path / "r.h5")
    cfg = config_from_dict({"labels": str(ratings), "task": "mujoco/Hopper-v5"}, kind="offline")
    assert cfg.labels == str(ratings)
    with pytest.raises(ValueError, match="holds ratings, but agent 'ipl' learns from preference pairs"):
        config_from_dict({"labels": str(ratings), "agent": "ipl"}, kind="offline")
    (tmp_path / "junk.h5").write_text("x")
    with pytest.raises(ValueError, match="cannot be used"):
        config_from_dict({"labels": str(tmp_path / "junk.h5")}, kind="offline")
    prefs = PreferenceDataset(_segs(2), _segs(2), [1.0, 0.0]).save(tmp_path / "p.h5")
    assert config_from_dict({"labels": str(prefs), "agent": "ipl"}, kind="offline").agent == "ipl"
    # the file's segments must fit the task (Hopper: 11 / 3; Reacher: 10 / 2), checked at the start
    run_dir = tmp_path / "run"
    res = runner.invoke(app, ["train", "offline", "--task", "mujoco/Reacher-v5", "--labels", str(ratings),
                              "-o", str(run_dir), "--quiet"])
    assert res.exit_code == 2 and res.output.startswith("error:"), res.output
    assert "observations of size 11" in " ".join(res.output.split()) and not run_dir.exists()
    # PEARL learns from another task's labels (it transfers them): their sizes need not be the task's
    from pbrl.app.runs import check_labels

    for agent, ok in (("pearl", True), ("mriql", False)):
        cfg = config_from_dict({"labels": str(prefs), "agent": agent, "task": "mujoco/Reacher-v5"}, kind="offline")
        if ok:
            check_labels(cfg)
        else:
            with pytest.raises(ValueError, match="observations of size 11"):
                check_labels(cfg)


@pytest.mark.parametrize("args, needle", [
    (["--teacher", "rating", "--agent", "qpa"], "agent 'qpa' learns from preference pairs"),
    (["--teacher", "mistake", "--n-classes", "4"], "n_classes applies to the rating teacher only"),
    (["--teacher", "rating", "--n-classes", "0"], "n_classes must be >= 2"),
])
def test_cli_rating_errors_are_one_line_exit_2(tmp_path, args, needle):
    run_dir = tmp_path / "run"
    res = runner.invoke(app, ["train", "online", *args, "-o", str(run_dir), "--quiet"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[0].startswith("error:") and len([ln for ln in lines if ln.startswith("error:")]) == 1, res.output
    assert needle in " ".join(res.output.split()) and "Traceback" not in res.output
    assert not run_dir.exists()


def test_sweep_over_pairs_and_ratings():
    pts = expand_grid({"n_classes": None}, teachers=["oracle", "rating"], seeds=[0])
    assert [p.name.split("__")[2] for p in pts] == ["oracle", "rating-n3"]
    pts = expand_grid({"teacher": "rating", "n_classes": 5}, agents=["pebble", "pref_ppo"])
    assert all("rating-n5" in p.name and p.config["n_classes"] == 5 for p in pts)
    with pytest.raises(ValueError, match="grid point .*agent 'surf' learns from preference pairs"):
        expand_grid({"teacher": "rating"}, agents=["pebble", "surf"])
    res = runner.invoke(app, ["sweep", "-o", "unused", "--teachers", "rating", "--agents", "sac,qpa", "--dry-run"])
    assert res.exit_code == 2 and "agent 'qpa' learns from preference pairs" in " ".join(res.output.split())


def test_reports_tell_rating_runs_of_different_class_counts_apart(tmp_path):
    from pbrl.app.report import RunRecord

    def rec(cfg):
        return RunRecord(tmp_path, cfg, "finished", None)

    assert rec({"teacher": "rating", "n_classes": 5}).key("teacher") == "rating-n5"
    assert rec({"teacher": "rating", "n_classes": None}).key("teacher") == "rating-n3"
    assert rec({"teacher": "mistake"}).key("teacher") == "mistake"
