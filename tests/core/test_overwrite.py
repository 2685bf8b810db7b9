"""Nothing is lost, nothing stale is reused (issue 15), with real files: ``--overwrite`` starts from
nothing and says where the old run went; existing outputs are refused without it; a corrupt newest
checkpoint falls back to the previous one; leftover temp files are cleaned at resume."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pbrl.app import runs
from pbrl.app.cli import app
from pbrl.app.config import config_from_dict
from pbrl.preferences import PreferenceDataset

runner = CliRunner()


@pytest.fixture(scope="module")
def reacher_h5(tmp_path_factory) -> Path:
    """300 random-policy steps of Reacher (6 episodes of 50 steps, with simulator states)."""
    from pbrl.envs.datasets import collect, save_d4rl

    path = tmp_path_factory.mktemp("data") / "reacher.hdf5"
    save_d4rl(collect("mujoco/Reacher-v5", "random", n_steps=300, seed=0), path)
    return path


def _offline(dataset: Path, **kw) -> dict:
    return {"kind": "offline", "task": "mujoco/Reacher-v5", "dataset": str(dataset), "agent": "ipl",
            "segment_length": 10, "steps": 30, "checkpoint_every": 10, "eval_every": 30, "n_eval_episodes": 1,
            "agent_kwargs": {"hidden": [16, 16], "batch_size": 8}, **kw}


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "Traceback" not in res.output and text.startswith("error:"), res.output
    for n in needles:
        assert n in text, res.output


def test_offline_overwrite_starts_from_nothing(reacher_h5, tmp_path):
    d = tmp_path / "run"
    base = ["train", "offline", "--dataset", str(reacher_h5), "--task", "mujoco/Reacher-v5", "--agent", "ipl",
            "--segment-length", "10", "--steps", "20", "--checkpoint-every", "10", "--eval-every", "20",
            "--n-eval-episodes", "1", "-s", "agent_kwargs.hidden=[16,16]", "-s", "agent_kwargs.batch_size=8",
            "-o", str(d), "--quiet"]
    res = runner.invoke(app, [*base, "--teacher", "oracle", "--total-feedback", "30"])
    assert res.exit_code == 0, res.output
    old = PreferenceDataset.load(d / "labels.h5")
    assert len(old) == 30
    # without --overwrite: refused, nothing touched
    res = runner.invoke(app, [*base, "--teacher", "mistake", "--total-feedback", "12"])
    _one_line_error(res, "already holds a run", "--overwrite")
    assert len(PreferenceDataset.load(d / "labels.h5")) == 30
    # with --overwrite: the NEW teacher and budget label the data, and the old run is kept aside
    res = runner.invoke(app, [*base, "--teacher", "mistake", "--total-feedback", "12", "--overwrite"])
    assert res.exit_code == 0, res.output
    new = PreferenceDataset.load(d / "labels.h5")
    assert len(new) == 12 and new.metadata["teacher"] == "mistake"
    assert json.loads((d / "metrics.json").read_text())["labels"] == 12
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and f"moved to {aside[0]}" in " ".join(res.output.split())
    assert len(PreferenceDataset.load(aside[0] / "labels.h5")) == 30  # the old labels are not lost
    assert (aside[0] / "checkpoints").is_dir() and (aside[0] / "metrics.json").exists()


def test_corrupt_newest_checkpoint_falls_back_and_temp_files_are_cleaned(reacher_h5, tmp_path, capsys):
    d = tmp_path / "run"
    runs.train(config_from_dict(_offline(reacher_h5, total_feedback=20)), d, verbose=False)
    rd = runs.RunDir(d)
    ckpts = sorted(rd.ckpt_dir.glob("step_*.pt"))
    assert [p.name for p in ckpts] == ["step_0000000020.pt", "step_0000000030.pt"]
    # pretend the run was killed after a damaged write of its newest checkpoint
    ckpts[-1].write_bytes(ckpts[-1].read_bytes()[:200])
    (d / "metrics.json").unlink()
    rd.write_status("running", step=30, labels=20, checkpoint=30)
    leftovers = [rd.ckpt_dir / ".step_0000000040.pt.x1y2.pt", d / ".labels.h5.abcd.tmp", d / ".curve.csv.q.csv"]
    for p in leftovers:
        p.write_bytes(b"half a file")
    capsys.readouterr()
    metrics = runs.resume(d, verbose=False)
    err = capsys.readouterr().err
    assert "step_0000000030.pt cannot be used" in err and "falling back to step_0000000020.pt" in err
    assert metrics["steps"] == 30 and rd.status()["state"] == "finished"
    assert not any(p.exists() for p in leftovers)


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    rd = runs.RunDir(tmp_path / "r")
    rd.ckpt_dir.mkdir(parents=True)
    (rd.ckpt_dir / "step_0000000010.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no usable checkpoint: step_0000000010.pt.*delete the checkpoints folder"):
        rd.load_checkpoint()


def test_dataset_label_refuses_an_existing_file(reacher_h5, tmp_path):
    out = tmp_path / "prefs.h5"
    res = runner.invoke(app, ["dataset", "label", str(reacher_h5), "--pairs", "40", "--segment-length", "10",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    before = out.read_bytes()
    res = runner.invoke(app, ["dataset", "label", str(reacher_h5), "--pairs", "5", "--segment-length", "10",
                              "-o", str(out)])
    _one_line_error(res, "already exists", "--overwrite")
    assert out.read_bytes() == before and len(PreferenceDataset.load(out)) == 40
    res = runner.invoke(app, ["dataset", "label", str(reacher_h5), "--pairs", "5", "--segment-length", "10",
                              "-o", str(out), "--overwrite"])
    assert res.exit_code == 0 and len(PreferenceDataset.load(out)) == 5


def test_dataset_collect_checks_its_output_before_collecting(tmp_path, monkeypatch):
    import pbrl.envs.collect as collect_mod

    def boom(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(collect_mod, "train_sac", boom)
    monkeypatch.setattr(collect_mod, "collect", boom)
    existing = tmp_path / "d.hdf5"
    existing.write_bytes(b"a dataset someone made")
    res = runner.invoke(app, ["dataset", "collect", "mujoco/Hopper-v5", "--policy", "medium", "-o", str(existing)])
    _one_line_error(res, "already exists", "--overwrite")
    assert existing.read_bytes() == b"a dataset someone made"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["dataset", "collect", "mujoco/Hopper-v5", "--policy", "medium",
                              "-o", str(blocker / "d.hdf5")])
    _one_line_error(res, "is an existing file, not a folder")
    res = runner.invoke(app, ["dataset", "collect", "mujoco/Hopper-v5", "--policy", "medium", "-o", "/proc/d.hdf5"])
    _one_line_error(res, "not writable")


def test_report_out_and_eval_video_refuse_existing_files(reacher_h5, tmp_path):
    d = tmp_path / "run"
    runs.train(config_from_dict(_offline(reacher_h5, total_feedback=20, steps=10, eval_every=10)), d, verbose=False)
    rep = tmp_path / "rep"
    assert runner.invoke(app, ["report", str(d), "-o", str(rep), "--resamples", "50"]).exit_code == 0
    first = (rep / "report.json").read_bytes()
    _one_line_error(runner.invoke(app, ["report", str(d), "-o", str(rep)]), "already holds a report", "--overwrite")
    assert (rep / "report.json").read_bytes() == first
    assert runner.invoke(app, ["report", str(d), "-o", str(rep), "--overwrite", "--resamples", "50"]).exit_code == 0
    _one_line_error(runner.invoke(app, ["report", str(d), "-o", str(rep / "report.json")]), "is an existing file")
    video = tmp_path / "ep.mp4"
    video.write_bytes(b"someone's video")
    _one_line_error(runner.invoke(app, ["eval", str(d), "--episodes", "1", "--video", str(video)]),
                    "already exists", "--overwrite")
    assert video.read_bytes() == b"someone's video"
    (tmp_path / "clips.mp4").mkdir()
    _one_line_error(runner.invoke(app, ["eval", str(d), "--video", str(tmp_path / "clips.mp4")]), "is a folder")


def test_files_get_the_usual_mode(tmp_path, reacher_h5):
    old = os.umask(0o022)
    try:
        from pbrl.io import atomic_write

        with atomic_write(tmp_path / "x.json") as tmp:
            tmp.write_text("{}")
        with atomic_write(tmp_path / "secret.txt", private=True) as tmp:
            tmp.write_text("token")
        res = runner.invoke(app, ["dataset", "label", str(reacher_h5), "--pairs", "5", "--segment-length", "10",
                                  "-o", str(tmp_path / "p.h5")])
        assert res.exit_code == 0, res.output
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "p.h5").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "secret.txt").stat().st_mode & 0o777 == 0o600


def test_portable_paths_makes_paths_under_the_base_relative_and_leaves_the_rest(tmp_path):
    from pbrl.io import portable_paths

    res = {"out": str(tmp_path / "bench" / "x.json"), "elsewhere": "/somewhere/else/y.json", "rel": "a/b",
           "n": 3, "plots": [str(tmp_path / "p.png"), ("keep", str(tmp_path))], "nested": {"d": str(tmp_path / "d")}}
    got = portable_paths(res, base=tmp_path)
    assert got == {"out": "bench/x.json", "elsewhere": "/somewhere/else/y.json", "rel": "a/b", "n": 3,
                   "plots": ["p.png", ("keep", ".")], "nested": {"d": "d"}}
    assert res["out"].startswith(str(tmp_path))  # a copy: the result itself is not changed

