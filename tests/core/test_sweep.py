"""`pbrl sweep`: a 2 x 2 grid runs locally in parallel processes and `pbrl report` reads its run dirs."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from pbrl.app.cli import app
from pbrl.app.report import build_report
from pbrl.app.sweep import choose_backend, expand_grid, run_point

BASE = {
    "kind": "offline",
    "task": "mujoco/Hopper-v5",
    "total_feedback": 20,
    "segment_length": 10,
    "steps": 40,
    "eval_every": 20,
    "checkpoint_every": 20,
    "n_eval_episodes": 1,
    "collect_steps": 500,
    "agent_kwargs": {"hidden": [16, 16], "batch_size": 32},
}


def test_grid_expansion_and_validation():
    pts = expand_grid(BASE, agents=["iql", "mriql"], seeds=[0, 1], budgets=[20, 40])
    assert len(pts) == 8
    names = {p.name for p in pts}
    assert "mriql__mujoco_Hopper-v5__oracle__b40__s1" in names
    assert all(p.config["kind"] == "offline" for p in pts)
    with pytest.raises(ValueError, match=r"grid point \{'agent': 'pebble'\}: unknown agent 'pebble' for offline"):
        expand_grid(BASE, agents=["iql", "pebble"])
    with pytest.raises(ValueError, match="repeats a value"):
        expand_grid(BASE, seeds=[1, 1])
    with pytest.raises(ValueError, match="total_feedback must be >= 1, got -5"):
        expand_grid(BASE, budgets=[-5])


def test_backend_choice():
    has_ray = importlib.util.find_spec("ray") is not None
    assert choose_backend("local") == "local"
    assert choose_backend("auto") == ("ray" if has_ray else "local")
    with pytest.raises(ValueError, match="allowed values: auto, local, ray"):
        choose_backend("slurm")
    if not has_ray:
        with pytest.raises(ValueError, match=r"pip install 'pbrl\[sweep\]'"):
            choose_backend("auto", address="ray://head:10001")


def test_sweep_2x2_locally_then_report(tmp_path):
    cfg = tmp_path / "base.json"
    cfg.write_text(json.dumps(BASE))
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["sweep", "-o", str(out), "-c", str(cfg), "--agents", "iql,mriql", "--seeds", "0-1",
                                   "--workers", "2", "--backend", "local"])
    assert res.exit_code == 0, res.output
    assert "4 of 4 runs finished" in res.output
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert dirs == [f"{a}__mujoco_Hopper-v5__oracle__b20__s{s}" for a in ("iql", "mriql") for s in (0, 1)]
    for d in dirs:
        m = json.loads((out / d / "metrics.json").read_text())
        assert m["steps"] == 40 and m["agent"] == d.split("__")[0]
    # mriql learned from 20 labels; iql uses the true reward and no labels
    assert json.loads((out / dirs[2] / "metrics.json").read_text())["labels"] == 20
    rep = build_report([out], score="return", n_resamples=200)
    assert set(rep["groups"]) == {"iql", "mriql"}
    assert all(g["n_runs"] == 2 for g in rep["groups"].values())
    # a finished grid point is not trained again when the sweep is re-run
    before = (out / dirs[0] / "metrics.json").read_text()
    again = run_point(json.loads((out / dirs[0] / "config.json").read_text()), str(out / dirs[0]))
    assert json.dumps(again, sort_keys=True) == json.dumps(json.loads(before), sort_keys=True)


def test_a_changed_grid_never_resumes_or_skips_runs_of_other_settings(tmp_path):
    """A run directory holding another config is refused before any work (it used to be resumed, or
    counted as finished, with its old settings)."""
    from pbrl.app.config import config_from_dict
    from pbrl.app.run_dir import RunDir

    pts = expand_grid(BASE, agents=["iql"], seeds=[0, 1])
    out = tmp_path / "sweep"
    old = RunDir(out / pts[0].name)
    old.path.mkdir(parents=True)
    config_from_dict({**BASE, "agent": "iql", "seed": 0, "steps": 80}).save(old.config_path)
    before = sorted(p.name for p in out.rglob("*"))
    res = CliRunner().invoke(app, ["sweep", "-o", str(out), "-c", str(_write(tmp_path, BASE)), "--agents", "iql",
                                   "--seeds", "0-1", "--workers", "1", "--backend", "local"])
    assert res.exit_code == 2, res.output
    assert "other settings (steps differ" in res.output and pts[0].name in res.output
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing ran, nothing was created
    # the same settings are accepted (that run would be resumed)
    config_from_dict({**BASE, "agent": "iql", "seed": 0}).save(old.config_path)
    from pbrl.app.sweep import check_existing_runs

    check_existing_runs(pts, out)
    # hidden sizes given as a tuple are the same settings as the list config.json stores
    check_existing_runs(expand_grid({**BASE, "agent_kwargs": {"hidden": (16, 16), "batch_size": 32}},
                                    agents=["iql"], seeds=[0, 1]), out)


def _write(tmp_path, data):
    p = tmp_path / "base.json"
    p.write_text(json.dumps(data))
    return p


def test_ctrl_c_stops_the_whole_local_sweep(tmp_path):
    """SIGINT to the sweep's process group (what Ctrl-C sends): the running run checkpoints and stops, the
    queued runs never start, and the command exits 130. It used to stop only the running run while the pool
    went on to start every queued one."""
    import os
    import signal
    import subprocess
    import sys

    from helpers import wait_for_checkpoint

    base = {**BASE, "steps": 20_000, "eval_every": 10_000, "checkpoint_every": 50}
    cfg = _write(tmp_path, base)
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "pbrl.app.cli", "sweep", "-o", str(out), "-c", str(cfg),
                             "--agents", "iql", "--seeds", "0-2", "--workers", "1", "--backend", "local"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = out / "iql__mujoco_Hopper-v5__oracle__b20__s0"
    try:
        wait_for_checkpoint(proc, first, 100, timeout=180)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stdout + stderr
    assert json.loads((first / "status.json").read_text())["state"] == "interrupted"
    assert not (first / "metrics.json").exists()
    assert not (out / "iql__mujoco_Hopper-v5__oracle__b20__s1").exists()  # queued: never started
    assert not (out / "iql__mujoco_Hopper-v5__oracle__b20__s2").exists()
    assert "0 of 3 runs finished" in stdout and "1 runs interrupted after a checkpoint, 2 not started" in stdout


def test_a_worker_whose_run_took_the_sigint_starts_no_queued_run(tmp_path, monkeypatch):
    """The run's own SIGINT handler takes Ctrl-C, so the worker's handler never sets the stop event. The
    worker must set it itself when its run comes back interrupted: the pool hands every worker one more
    queued run, which used to start when it reached the worker before the driver's stop request did."""
    import multiprocessing as mp
    import signal

    from pbrl.app import sweep

    calls = []

    def fake_run_point(config, run_dir, verbose=False, tracking=None):
        calls.append(run_dir)
        return {"state": "interrupted"}

    monkeypatch.setattr(sweep, "run_point", fake_run_point)
    old = signal.getsignal(signal.SIGINT)
    stop = mp.get_context("spawn").Event()
    try:
        sweep._init_worker(stop)
        assert sweep._local_worker({}, str(tmp_path / "a")) == {"state": "interrupted"}
        assert stop.is_set()
        assert sweep._local_worker({}, str(tmp_path / "b")) == sweep.NOT_STARTED
    finally:
        signal.signal(signal.SIGINT, old)
        monkeypatch.setattr(sweep, "_STOP", None)
    assert calls == [str(tmp_path / "a")]


def test_a_run_still_labelling_when_the_sigint_comes_stops_at_its_first_checkpoint(tmp_path, monkeypatch):
    """A SIGINT during a run's preparation (here: right after the teacher labelled its pairs) reaches the
    pool worker's handler, not the run's, which is installed only when training starts. The run must still
    stop at its first checkpointable point; it used to train to its end."""
    import multiprocessing as mp
    import os
    import signal

    from pbrl.app import sweep, train_offline
    from pbrl.callbacks import set_external_stop

    orig = train_offline.label_dataset

    def label_then_sigint(*args, **kwargs):
        out = orig(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the run is still preparing
        return out

    monkeypatch.setattr(train_offline, "label_dataset", label_then_sigint)
    cfg = expand_grid({**BASE, "steps": 400, "checkpoint_every": 100, "eval_every": 200}, agents=["mriql"], seeds=[0])[0]
    old = signal.getsignal(signal.SIGINT)
    stop = mp.get_context("spawn").Event()
    run_dir = tmp_path / cfg.name
    try:
        sweep._init_worker(stop)
        res = sweep._local_worker(cfg.config, str(run_dir))
    finally:
        signal.signal(signal.SIGINT, old)
        set_external_stop(None)
        monkeypatch.setattr(sweep, "_STOP", None)
    assert stop.is_set()
    assert res.get("state") == "interrupted" and res["step"] < 100, res
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    assert not (run_dir / "metrics.json").exists() and (run_dir / "labels.h5").exists()
