"""One process at a time trains in a run directory: a second `pbrl train --resume`, a second sweep over the same
folder or a `runs.resume` from another process finds the run's lock held and leaves the run untouched; the lock
goes with its process, a SIGKILL included. (Before the lock, both processes trained the same run at once,
writing the same checkpoints and status.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pbrl.app.run_dir import RunBusy, RunDir, check_not_busy, lock_path, run_lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs are locked with POSIX flock")

BASE = {
    "kind": "offline",
    "task": "mujoco/Hopper-v5",
    "agent": "bc",
    "total_feedback": 10,
    "segment_length": 10,
    "steps": 20,
    "eval_every": 20,
    "checkpoint_every": 10,
    "n_eval_episodes": 1,
    "collect_steps": 300,
    "agent_kwargs": {"hidden": [8, 8], "batch_size": 16},
}


def _hold(*run_dirs: Path) -> subprocess.Popen:
    """Another process holding the lock of ``run_dirs`` until it is killed; returns once it holds them."""
    code = ("import sys, time\nfrom pbrl.app.run_dir import run_lock\n"
            f"with run_lock(*{[str(d) for d in run_dirs]!r}):\n    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _snapshot(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in sorted(d.rglob("*"))}


def test_the_lock_names_its_holder_and_goes_with_a_killed_process(tmp_path):
    run = tmp_path / "runs" / "r"
    check_not_busy(run)  # no lock file yet: not busy, and nothing is made
    assert not (tmp_path / "runs").exists()
    proc = _hold(run)
    try:
        assert lock_path(run) == tmp_path / "runs" / ".r.lock" and not run.exists()
        with pytest.raises(RunBusy, match=rf"being trained by another process \(pid {proc.pid}\)"):
            check_not_busy(run)
        with pytest.raises(RunBusy, match="pbrl train --resume"):
            with run_lock(tmp_path / "free", run):
                pytest.fail("the block must not run while another process holds a lock")
        with run_lock(tmp_path / "free"):  # the free one was let go when the busy one failed
            pass
    finally:
        _kill(proc)
    check_not_busy(run)  # SIGKILL released it
    with run_lock(run):
        assert lock_path(run).read_text().strip() == str(os.getpid())


def _offline_run(tmp_path: Path) -> Path:
    """A finished-by-half offline run: trained to its first checkpoint and stopped there."""
    from pbrl.app import runs
    from pbrl.app.config import config_from_dict

    run = tmp_path / "run"
    runs.train(config_from_dict({**BASE, "steps": 10}), run, verbose=False)  # 10 of its steps, then finished
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "steps": 20}))  # 20 now: resume has 10 more to do
    RunDir(run).write_status("interrupted", step=10, labels=10)
    return run


def test_resume_of_a_run_another_process_trains_touches_nothing(tmp_path):
    from pbrl.app import runs
    from pbrl.app.cli import app

    run = _offline_run(tmp_path)
    before = _snapshot(run)
    proc = _hold(run)
    try:
        with pytest.raises(RunBusy):
            runs.resume(run, verbose=False)
        res = CliRunner().invoke(app, ["train", "--resume", str(run)])
        assert res.exit_code == 2 and "being trained by another process" in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
        assert _snapshot(run) == before
    finally:
        _kill(proc)
    assert runs.resume(run, verbose=False)["steps"] == 20  # free again: it resumes and finishes


def test_a_new_start_in_a_busy_directory_is_refused_before_any_work(tmp_path):
    from pbrl.app import runs
    from pbrl.app.config import config_from_dict

    run = tmp_path / "new"
    proc = _hold(run)
    try:
        with pytest.raises(RunBusy):
            runs.check_start(config_from_dict(BASE), run, overwrite=True)
        with pytest.raises(RunBusy):
            runs.train(config_from_dict(BASE), run, verbose=False, overwrite=True)
        assert not run.exists()
    finally:
        _kill(proc)


def test_a_failed_start_leaves_no_lock_file_behind(tmp_path, monkeypatch):
    from pbrl.app import runs
    from pbrl.app.config import config_from_dict

    def broken(*a, **k):
        raise RuntimeError("broken before the first checkpoint")

    monkeypatch.setattr(runs, "train_offline", broken)
    with pytest.raises(RuntimeError, match="broken"):
        runs.train(config_from_dict(BASE), tmp_path / "r", verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_sweep_skips_the_run_another_process_trains_and_trains_the_rest(tmp_path):
    from pbrl.app.sweep import BUSY, expand_grid, run_sweep

    points = expand_grid(BASE, seeds=[0, 1])
    out = tmp_path / "sweep"
    busy = out / points[0].name
    proc = _hold(busy)
    try:
        res = run_sweep(points, out, backend="local", workers=1, progress=False)
        assert res[points[0].name]["state"] == BUSY and "another process" in res[points[0].name]["message"]
        assert res[points[1].name]["steps"] == 20
        assert not busy.exists()  # untouched: never started here
    finally:
        _kill(proc)
    res = run_sweep(points, out, backend="local", workers=1, progress=False)  # the same command once it is free
    assert all(r["steps"] == 20 for r in res.values())


def test_one_lock_whatever_the_path_spelling(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (tmp_path / "link").symlink_to(run)
    monkeypatch.chdir(run)
    assert lock_path(".") == lock_path(run) == lock_path(tmp_path / "link") == lock_path("../r")
    proc = _hold(run)
    try:
        for spelling in (".", "../r", tmp_path / "link"):
            with pytest.raises(RunBusy):
                check_not_busy(spelling)
    finally:
        _kill(proc)


def test_a_refused_lock_of_several_runs_leaves_nothing_it_made(tmp_path):
    busy = tmp_path / "busy"
    proc = _hold(busy)
    try:
        with pytest.raises(RunBusy):
            with run_lock(tmp_path / "new" / "a", busy, tmp_path / "new" / "b"):
                pass
    finally:
        _kill(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".busy.lock"]  # the holder's file only


def test_train_takes_the_lock_itself_not_only_its_check(tmp_path):
    from pbrl.app import runs
    from pbrl.app.config import config_from_dict

    run = tmp_path / "new"
    cfg = config_from_dict(BASE)
    checked = runs.check_start(cfg, run)  # checked while free, then another process takes the directory
    proc = _hold(run)
    try:
        with pytest.raises(RunBusy):
            runs.train(cfg, run, verbose=False, checked=checked)
        assert not run.exists()
    finally:
        _kill(proc)


def test_a_batch_seeds_group_with_a_busy_run_is_left_whole_and_its_finished_runs_keep_their_metrics(tmp_path):
    from pbrl.app.sweep import BUSY, expand_grid, run_sweep
    from pbrl.envs.collect import collect
    from pbrl.envs.d4rl import save_d4rl

    save_d4rl(collect("mujoco/Hopper-v5", "random", n_steps=300, seed=0), tmp_path / "hop.hdf5")
    base = {k: v for k, v in BASE.items() if k != "collect_steps"}
    points = expand_grid({**base, "dataset": str(tmp_path / "hop.hdf5")}, seeds=[0, 1, 2])  # one group: a file
    out = tmp_path / "sweep"
    first = run_sweep(points[:1], out, backend="local", workers=1, progress=False)  # seed 0 finished already
    proc = _hold(out / points[1].name)
    try:
        res = run_sweep(points, out, backend="local", workers=1, progress=False, batch_seeds=True)
    finally:
        _kill(proc)
    assert res[points[0].name] == first[points[0].name]
    assert res[points[1].name]["state"] == BUSY and res[points[2].name]["state"] == BUSY
    assert not (out / points[1].name).exists() and not (out / points[2].name).exists()


def test_the_sweep_command_says_what_it_skipped_and_exits_75(tmp_path):
    from pbrl.app.cli import app

    cfg = tmp_path / "base.json"
    cfg.write_text(json.dumps(BASE))
    out = tmp_path / "sweep"
    proc = _hold(out / "bc__mujoco_Hopper-v5__oracle__b10__s1")
    try:
        res = CliRunner().invoke(app, ["sweep", "-o", str(out), "-c", str(cfg), "--seeds", "0-1", "--workers", "1",
                                       "--backend", "local"])
    finally:
        _kill(proc)
    assert res.exit_code == 75, res.output
    assert "1 of 2 runs finished" in res.output and "skipped bc__mujoco_Hopper-v5__oracle__b10__s1" in res.output
