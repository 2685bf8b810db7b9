"""K offline runs that differ only in their seed, trained in one process (``runs.train_seeds``,
``pbrl sweep --batch-seeds``): each run directory ends as its single-seed run's would."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pbrl.agents.multiseed import MultiSeed
from pbrl.app import runs
from pbrl.app.cli import app
from pbrl.app.config import config_from_dict
from pbrl.app.run_dir import RunDir
from pbrl.app.sweep import expand_grid, seed_groups

BASE = {
    "kind": "offline",
    "task": "mujoco/Hopper-v5",
    "total_feedback": 12,
    "segment_length": 10,
    "steps": 40,
    "eval_every": 20,
    "checkpoint_every": 20,
    "n_eval_episodes": 1,
    "agent_kwargs": {"hidden": [16, 16], "batch_size": 32},
}


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory):
    from pbrl.envs.datasets import collect, save_d4rl

    path = tmp_path_factory.mktemp("data") / "hopper.hdf5"
    save_d4rl(collect("mujoco/Hopper-v5", policy="random", n_steps=600, seed=0), path)
    return str(path)


def _cfgs(dataset_file, agent, seeds=(0, 1), **over):
    return [config_from_dict({**BASE, "dataset": dataset_file, "agent": agent, "seed": s, **over}) for s in seeds]


def _curve(d):
    return [(r["step"], r["mean_return"]) for r in RunDir(d).curve()]


@pytest.mark.parametrize("agent", ["mriql", "cpl"])
def test_batched_seeds_equal_their_single_seed_runs(tmp_path, dataset_file, agent):
    over = {"agent_kwargs": {"hidden": [16, 16], "batch_size": 32, "pair_batch_size": 4}} if agent == "cpl" else {}
    cfgs = _cfgs(dataset_file, agent, **over)
    batched = [tmp_path / f"batched_s{c.seed}" for c in cfgs]
    res = runs.train_seeds(cfgs, batched)
    for c, d, m in zip(cfgs, batched, res):
        single = tmp_path / f"single_s{c.seed}"
        runs.train(c, single, verbose=False)
        assert m["seed_batch"] == 2 and m["steps"] == 40 and RunDir(d).status()["state"] == "finished"
        # the same labels (drawn with the run's own seed), the same evaluations up to float rounding
        assert (d / "labels.h5").read_bytes() == (single / "labels.h5").read_bytes()
        a, b = _curve(d), _curve(single)
        assert [s for s, _ in a] == [s for s, _ in b] == [20, 40]
        np.testing.assert_allclose([r for _, r in a], [r for _, r in b], rtol=1e-3, atol=1e-3)
        assert (d / "agent.pt").exists() and list((d / "checkpoints").glob("step_*"))
    # the two seeds learned from different labels and differ
    assert (batched[0] / "labels.h5").read_bytes() != (batched[1] / "labels.h5").read_bytes()
    # each run is charged its share of the process's time, not the whole
    assert all(0 < m["cpu_time_s"] for m in res)


def _interrupt_after_two_checkpoints(cfgs, dirs, monkeypatch):
    real_fit, calls = MultiSeed.fit, []

    def dying_fit(self, *a, **kw):
        calls.append(1)
        if len(calls) == 3:  # after the checkpoints at 10 and 20
            raise KeyboardInterrupt
        return real_fit(self, *a, **kw)

    monkeypatch.setattr(MultiSeed, "fit", dying_fit)
    with pytest.raises(KeyboardInterrupt):
        runs.train_seeds(cfgs, dirs)
    monkeypatch.setattr(MultiSeed, "fit", real_fit)


def test_an_interrupted_batch_resumes_to_the_uninterrupted_result(tmp_path, dataset_file, monkeypatch):
    cfgs = _cfgs(dataset_file, "ipl", checkpoint_every=10)
    whole = [tmp_path / f"whole_s{c.seed}" for c in cfgs]
    runs.train_seeds(cfgs, whole)
    cut = [tmp_path / f"cut_s{c.seed}" for c in cfgs]
    _interrupt_after_two_checkpoints(cfgs, cut, monkeypatch)
    for d in cut:  # killed after the step-20 checkpoint: kept, resumable, marked failed
        assert RunDir(d).status()["state"] == "failed" and RunDir(d).latest_checkpoint() is not None
    res = runs.train_seeds(cfgs, cut)
    for w, c, m in zip(whole, cut, res):
        assert m["steps"] == 40
        assert _curve(c) == _curve(w)
    # finished runs are skipped: the same metrics come back, nothing is trained again
    again = runs.train_seeds(cfgs, cut)
    assert [m["final"] for m in again] == [m["final"] for m in res]


def test_an_unreadable_newest_checkpoint_falls_back_to_one_by_one(tmp_path, dataset_file, monkeypatch):
    cfgs = _cfgs(dataset_file, "iql", checkpoint_every=10)
    whole = [tmp_path / f"whole_s{c.seed}" for c in cfgs]
    runs.train_seeds(cfgs, whole)
    cut = [tmp_path / f"cut_s{c.seed}" for c in cfgs]
    _interrupt_after_two_checkpoints(cfgs, cut, monkeypatch)
    # seed 0's newest checkpoint is unreadable: it resumes from step 10, seed 1 from 20; they can no longer
    # be batched, so they train one by one (this used to fail the whole group at every retry)
    RunDir(cut[0]).latest_checkpoint().write_bytes(b"not a checkpoint")
    res = runs.train_seeds(cfgs, cut)
    assert all("seed_batch" not in m and m["steps"] == 40 for m in res)
    for w, c in zip(whole, cut):  # the single-seed path: equal up to float rounding
        np.testing.assert_allclose([r for _, r in _curve(c)], [r for _, r in _curve(w)], rtol=1e-4)


def test_a_failed_batched_start_leaves_no_directory(tmp_path, dataset_file, monkeypatch):
    cfgs = _cfgs(dataset_file, "iql")

    def boom(self, *a, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(MultiSeed, "fit", boom)
    dirs = [tmp_path / f"s{c.seed}" for c in cfgs]
    with pytest.raises(RuntimeError, match="boom"):
        runs.train_seeds(cfgs, dirs)
    assert not any(d.exists() for d in dirs)


def test_only_seed_groups_with_a_shared_dataset_are_batched(dataset_file):
    pts = expand_grid({**BASE, "dataset": dataset_file}, agents=["iql", "ipl"], seeds=[0, 1, 2])
    groups = seed_groups(pts)
    assert [len(g) for g in groups] == [3, 3]
    assert {p.config["agent"] for p in groups[0]} == {"iql"}
    collected = expand_grid(BASE, agents=["iql"], seeds=[0, 1])  # each seed collects its own data
    assert [len(g) for g in seed_groups(collected)] == [1, 1]
    online = expand_grid({"kind": "online", "task": "mujoco/Reacher-v5", "total_timesteps": 100}, seeds=[0, 1])
    assert [len(g) for g in seed_groups(online)] == [1, 1]
    from pbrl.app.train_offline import train_offline_seeds

    a, b = _cfgs(dataset_file, "iql")
    with pytest.raises(ValueError, match="differ only in their seed"):
        train_offline_seeds([a, config_from_dict({**b.to_dict(), "steps": 60})], ["x", "y"])


def test_sweep_batch_seeds_from_the_command_line(tmp_path, dataset_file):
    cfg = tmp_path / "base.json"
    cfg.write_text(json.dumps({**BASE, "dataset": dataset_file, "agent": "iql"}))
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["sweep", "-o", str(out), "-c", str(cfg), "--seeds", "0-1", "--batch-seeds",
                                   "--backend", "local", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "2 of 2 runs finished" in res.output
    metrics = [json.loads((d / "metrics.json").read_text()) for d in sorted(out.iterdir()) if d.is_dir()]
    assert [m["seed"] for m in metrics] == [0, 1] and all(m["seed_batch"] == 2 for m in metrics)


def test_a_failure_after_a_run_finished_keeps_that_run(tmp_path, dataset_file, monkeypatch):
    import pbrl.app.train_offline as to

    cfgs = _cfgs(dataset_file, "iql", checkpoint_every=10)
    dirs = [tmp_path / f"s{c.seed}" for c in cfgs]
    other = _cfgs(dataset_file, "iql", seeds=(1, 2), checkpoint_every=10)
    _interrupt_after_two_checkpoints(other, [dirs[1], tmp_path / "s2"], monkeypatch)  # seed 1: resumable at 20
    real, calls = to._fit_one, []

    def fail_second(r, verbose):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(r, verbose)

    monkeypatch.setattr(to, "_fit_one", fail_second)
    with pytest.raises(RuntimeError, match="boom"):
        runs.train_seeds(cfgs, dirs)  # a new run and a resumed one: trained one by one, the second fails
    assert RunDir(dirs[0]).status()["state"] == "finished" and (dirs[0] / "metrics.json").exists()
    assert RunDir(dirs[1]).status()["state"] == "failed" and RunDir(dirs[1]).latest_checkpoint() is not None


def test_the_chunks_of_a_batch_prepare_their_inputs_once(tmp_path, dataset_file, monkeypatch):
    from pbrl.agents.iql import MRIQL

    calls = []
    real = MRIQL.learned_rewards
    monkeypatch.setattr(MRIQL, "learned_rewards", lambda self, ds: calls.append(1) or real(self, ds))
    cfgs = _cfgs(dataset_file, "mriql", checkpoint_every=10)  # 4 chunks of 10 updates
    runs.train_seeds(cfgs, [tmp_path / f"s{c.seed}" for c in cfgs])
    assert len(calls) == 2  # one relabelling of the dataset per seed, not one per chunk
