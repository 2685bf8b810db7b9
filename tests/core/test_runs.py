"""pbrl.app.runs / `pbrl train`: SIGKILL + resume gives exactly the uninterrupted run; SIGINT stops after a
checkpoint; bad configs fail before any work; checkpoints are atomic."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from helpers import sigkill_then_resume, start_train, tiny_online_config, wait_for_checkpoint
from typer.testing import CliRunner

from pbrl.app import runs
from pbrl.app.cli import app
from pbrl.app.config import config_from_dict
from pbrl.preferences import PreferenceDataset

TINY = tiny_online_config()


def _start(cfg_path: Path, run_dir: Path):
    return start_train("online", "-c", str(cfg_path), "-o", str(run_dir), "--quiet")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of TINY (seed 0)."""
    d = tmp_path_factory.mktemp("ref") / "run"
    cfg = config_from_dict(dict(TINY))
    runs.train(cfg, d, verbose=False)
    return d


def _same_labels(a: Path, b: Path) -> None:
    x, y = PreferenceDataset.load(a / "labels.h5"), PreferenceDataset.load(b / "labels.h5")
    assert len(x) == len(y) == 40
    np.testing.assert_array_equal(x.label, y.label)
    np.testing.assert_array_equal(x.a.obs, y.a.obs)
    np.testing.assert_array_equal(x.b.act, y.b.act)


def test_sigkill_then_resume_equals_uninterrupted_run(reference, tmp_path):
    d, metrics = sigkill_then_resume(TINY, tmp_path, 200)
    assert metrics["steps"] == TINY["total_timesteps"] == json.loads((reference / "metrics.json").read_text())["steps"]
    _same_labels(reference, d)
    # the policy continued identically too: the same evaluation curve
    assert (reference / "curve.csv").read_text() == (d / "curve.csv").read_text()
    assert runs.RunDir(d).status()["state"] == "finished"


def test_metrics_name_where_the_feedback_cpu_time_went_summed_over_resumes(reference, tmp_path):
    ref = json.loads((reference / "metrics.json").read_text())["feedback_time_s"]
    assert set(ref) == {"query", "fit", "relabel"} and ref["fit"] > 0
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    d = tmp_path / "killed"
    proc = _start(cfg_path, d)
    wait_for_checkpoint(proc, d, 300)  # after several refits
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    payload = runs.RunDir(d).load_checkpoint()
    before = payload["callback"]["timing"]["fit"]
    assert before > 0  # the checkpoint carries the time spent before the kill
    cpu_before = payload["progress"]["cpu_time_s"]
    assert cpu_before > 1.0  # and the run's CPU time up to it (it was lost with a killed session)
    metrics = runs.resume(d, verbose=False)
    assert metrics["feedback_time_s"]["fit"] > before
    assert metrics["cpu_time_s"] > cpu_before


def _tb_points(run_dir: Path) -> list[tuple[str, int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))  # purge_orphaned_data=True: honours SummaryWriter(purge_step)
    acc.Reload()
    return [(tag, e.step) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)]


def test_resume_leaves_one_tensorboard_point_per_tag_and_step(reference, tmp_path):
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    d = tmp_path / "killed"
    proc = _start(cfg_path, d)
    ckpt = wait_for_checkpoint(proc, d, 300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    runs.resume(d, verbose=False)
    points = _tb_points(d)
    assert points and len(points) == len(set(points)), "duplicate (tag, step) points after resume"
    ref = _tb_points(reference)
    assert sorted(points) == sorted(ref)  # the same points as the uninterrupted run
    assert ckpt < TINY["total_timesteps"]


def test_overwrite_then_kill_then_resume_never_restores_the_old_run(reference, tmp_path):
    """--overwrite with a new seed, killed before its first checkpoint, then --resume: the new seed's run,
    equal to an uninterrupted run of it, never the old seed's checkpoint."""
    d = tmp_path / "run"
    runs.train(config_from_dict({**TINY, "seed": 3}), d, verbose=False)
    old_labels = PreferenceDataset.load(d / "labels.h5")
    # what `pbrl train online --overwrite --seed 0` does first, then a SIGKILL before any checkpoint
    rd = runs.RunDir(d).create(config_from_dict(dict(TINY)), overwrite=True)
    assert rd.moved_to is not None and (rd.moved_to / "checkpoints").is_dir()
    assert rd.latest_checkpoint() is None and not (d / "labels.h5").exists()
    metrics = runs.resume(d, verbose=False)
    assert metrics["seed"] == 0
    _same_labels(reference, d)
    assert not np.array_equal(PreferenceDataset.load(d / "labels.h5").a.obs, old_labels.a.obs)
    assert (reference / "curve.csv").read_text() == (d / "curve.csv").read_text()


def test_sigint_stops_cleanly_after_a_checkpoint(reference, tmp_path):
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    d = tmp_path / "interrupted"
    proc = _start(cfg_path, d)
    wait_for_checkpoint(proc, d, 100)
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=120)
    status = json.loads((d / "status.json").read_text())
    if status["state"] == "finished":  # the run ended before the signal landed: nothing to check
        pytest.skip("run finished before SIGINT")
    assert rc == 130
    assert status["state"] == "interrupted"
    ckpt = runs.RunDir(d).latest_checkpoint()
    assert ckpt is not None and int(ckpt.stem.split("_")[1]) == status["step"]
    assert not (d / "metrics.json").exists()
    # labels on disk are those of the checkpoint: a prefix of the uninterrupted run's labels
    got = PreferenceDataset.load(d / "labels.h5")
    ref = PreferenceDataset.load(reference / "labels.h5")
    assert 0 < len(got) <= len(ref)
    np.testing.assert_array_equal(got.label, ref.label[: len(got)])


def test_bad_config_fails_before_any_work(tmp_path):
    runner = CliRunner()
    for args, msg in [
        (["--set", "total_feedbak=10"], "unknown config key 'total_feedbak'"),
        (["--total-feedback", "-3"], "total_feedback must be >= 1, got -3"),
        (["--agent", "pebbel"], "unknown agent 'pebbel' for online training"),
    ]:
        d = tmp_path / "never"
        res = runner.invoke(app, ["train", "online", "-o", str(d), *args])
        assert res.exit_code == 2, res.output
        assert msg in " ".join(res.output.split()), res.output
        assert "allowed" in res.output or "must be" in res.output
        assert not d.exists()


def test_checkpoints_are_atomic_and_latest_wins(tmp_path):
    rd = runs.RunDir(tmp_path / "r")
    rd.create(config_from_dict(dict(TINY)))
    rd.save_checkpoint(100, {"x": 1})
    rd.save_checkpoint(200, {"x": 2})
    # a crash mid-write leaves only a temp file behind: it is never read
    (rd.ckpt_dir / ".step_0000000300.pt.abc.pt").write_bytes(b"half a checkpoint")
    assert rd.load_checkpoint()["x"] == 2 and rd.load_checkpoint()["step"] == 200
    rd.save_checkpoint(300, {"x": 3})
    assert sorted(p.name for p in rd.ckpt_dir.glob("step_*.pt")) == ["step_0000000200.pt", "step_0000000300.pt"]
    with pytest.raises(ValueError, match="already holds a run"):
        rd.create(config_from_dict(dict(TINY)))


def test_eval_reports_and_renders_video(reference, tmp_path):
    import imageio.v3 as iio

    video = tmp_path / "ep.mp4"
    res = CliRunner().invoke(app, ["eval", str(reference), "--episodes", "2", "--video", str(video)])
    assert res.exit_code == 0, res.output
    ev = json.loads((reference / "eval.json").read_text())
    assert len(ev["returns"]) == 2 and ev["mean_return"] == pytest.approx(np.mean(ev["returns"]))
    assert ev["success_rate"] == 0.0 and ev["policy"].endswith("model.zip")
    assert f"return {ev['mean_return']:.2f}" in " ".join(res.output.split())
    frames = iio.imread(video, index=None)
    assert frames.shape == (TINY["max_episode_steps"] + 1, 240, 320, 3)  # reset frame + one per step
    assert frames.std() > 1.0  # a rendered scene, not a blank image
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a pbrl run directory" in res.output


def test_a_failed_start_leaves_no_run_directory(tmp_path):
    bad = tmp_path / "broken.hdf5"
    bad.write_bytes(b"not hdf5 at all")
    cfg = config_from_dict({"kind": "offline", "dataset": str(bad), "steps": 10})
    with pytest.raises(ValueError, match="broken.hdf5"):
        runs.train(cfg, tmp_path / "r", verbose=False)
    assert not (tmp_path / "r").exists()  # the corrected command is not blocked by a half-made run


def test_a_run_failing_after_a_checkpoint_is_marked_failed(tmp_path, monkeypatch):
    import pbrl.envs.evaluation as cb

    calls = {"n": 0}
    real = cb.evaluation_row

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the evaluation at step 200, after the checkpoint at step 100
            raise RuntimeError("simulated failure")
        return real(*a, **k)

    monkeypatch.setattr(cb, "evaluation_row", flaky)
    with pytest.raises(RuntimeError, match="simulated failure"):
        runs.train(config_from_dict(dict(TINY)), tmp_path / "r", verbose=False)
    st = runs.RunDir(tmp_path / "r").status()
    assert st["state"] == "failed" and "simulated failure" in st["error"]
    assert runs.RunDir(tmp_path / "r").latest_checkpoint() is not None  # still resumable
