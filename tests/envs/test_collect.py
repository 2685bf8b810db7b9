"""Dataset collection: random, Meta-World scripted with noise and early stop, SAC medium/expert/replay, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pbrl.envs.collect import collect, collect_with, measure_reference_returns, scripted_policy, train_sac
from pbrl.envs.datasets import OfflineDataset, load_d4rl


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_random_collection_is_exact_and_reproducible():
    a = collect("mujoco/Hopper-v5", "random", n_steps=700, seed=4, n_envs=2)
    b = collect("mujoco/Hopper-v5", "random", n_steps=700, seed=4, n_envs=2)
    c = collect("mujoco/Hopper-v5", "random", n_steps=700, seed=5, n_envs=2)
    assert len(a) == 700
    assert np.array_equal(a.observations, b.observations) and np.array_equal(a.actions, b.actions)
    assert not np.array_equal(a.actions, c.actions)
    assert a.metadata["task_id"] == "mujoco/Hopper-v5" and a.metadata["policy"] == "random"
    assert np.all(np.abs(a.actions) <= 1.0)
    # qpos/qvel are the state of observations[t]: Hopper's observation is qpos[1:] and clip(qvel, -10, 10)
    assert np.allclose(a.observations[:, :5], a.infos["qpos"][:, 1:], atol=1e-5)
    assert np.allclose(a.observations[:, 5:], np.clip(a.infos["qvel"], -10, 10), atol=1e-5)
    # within an episode, next_observations[t] == observations[t + 1]
    starts, ends = a.episode_bounds
    inner = np.setdiff1d(np.arange(len(a) - 1), ends)
    assert np.array_equal(a.next_observations[inner], a.observations[inner + 1])
    # every episode ends with a terminal (Hopper fell) or a time-out (cut by the step budget)
    assert np.all(a.terminals[ends] | a.timeouts[ends])
    assert a.terminals.sum() > 10


def test_scripted_metaworld_noise_and_early_stop():
    ds = collect("metaworld/button-press-v3", "scripted", n_steps=800, seed=0, noise=[0.0, 0.3], early_stop=7)
    assert len(ds) == 800 and ds.obs_dim == 39 and ds.act_dim == 4
    starts, ends = ds.episode_bounds
    succ = ds.episode_success()
    assert succ[:-1].all()  # the scripted policy presses the button in every finished episode
    for s, e in zip(starts[:-1], ends[:-1]):
        first = s + int(np.argmax(ds.success[s : e + 1]))
        assert e == first + 7 and ds.timeouts[e]  # stopped 7 steps after the first success
    # noise levels cycle per episode and are recorded
    levels = ds.infos["noise"][starts]
    assert np.allclose(levels[:4], [0.0, 0.3, 0.0, 0.3])
    # noise-free episodes act exactly as the scripted policy
    pol = scripted_policy("metaworld/button-press-v3")
    s, e = starts[0], ends[0]
    expect = np.stack([pol.get_action(o.astype(np.float64)) for o in ds.observations[s : e + 1]])
    assert np.allclose(ds.actions[s : e + 1], np.clip(expect, -1, 1), atol=1e-6)
    s, e = starts[1], ends[1]
    expect = np.stack([pol.get_action(o.astype(np.float64)) for o in ds.observations[s : e + 1]])
    assert np.abs(ds.actions[s : e + 1] - np.clip(expect, -1, 1)).mean() > 0.05


def test_collect_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown policy"):
        collect("mujoco/Hopper-v5", "superb", n_steps=10)
    with pytest.raises(ValueError, match="only for Meta-World"):
        collect("mujoco/Hopper-v5", "scripted", n_steps=10)
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        collect("mujoco/Hopper-v5", "random", n_steps=-3)
    with pytest.raises(ValueError, match="unknown task id"):
        collect("mujoco/Hoper-v5", "random", n_steps=10)
    with pytest.raises(ValueError, match="noise levels"):
        collect("metaworld/button-press-v3", "scripted", n_steps=10, noise=-1.0)


def test_reference_returns_order_random_below_scripted():
    ref = measure_reference_returns("metaworld/drawer-open-v3", "scripted", n_episodes=1, seed=0)
    assert ref["ref_max_return"] > 2 * ref["ref_min_return"]


def test_sac_medium_expert_replay(tmp_path):
    run = train_sac("mujoco/Hopper-v5", total_steps=300, seed=0, eval_every=100, n_eval_episodes=1,
                    learning_starts=50, out_dir=tmp_path, sac_kwargs={"batch_size": 32})
    assert [c["step"] for c in run.checkpoints] == [100, 200, 300]
    assert run.medium_index in (0, 1)
    target = run.expert["mean_return"] / 3
    gaps = [abs(c["mean_return"] - target) for c in run.checkpoints[:-1]]
    assert gaps[run.medium_index] == min(gaps)
    # the replay record is every training transition, consistent with itself
    rep = run.replay
    assert len(rep) == 300
    starts, ends = rep.episode_bounds
    inner = np.setdiff1d(np.arange(len(rep) - 1), ends)
    assert np.array_equal(rep.next_observations[inner], rep.observations[inner + 1])
    assert np.allclose(rep.observations[:, :5], rep.infos["qpos"][:, 1:], atol=1e-5)
    mr = collect("mujoco/Hopper-v5", "medium-replay", sac_run=run)
    assert len(mr) == run.medium["step"]
    assert np.array_equal(mr.observations, rep.observations[: len(mr)])
    assert mr.terminals[-1] or mr.timeouts[-1]
    me = collect("mujoco/Hopper-v5", "medium-expert", n_steps=100, sac_run=run)
    assert len(me) == 200 and me.metadata["policy"] == "medium-expert"
    # the expert data is the expert's deterministic actions
    exp = collect("mujoco/Hopper-v5", "expert", n_steps=50, sac_run=run)
    model = run.load("expert")
    assert np.allclose(exp.actions, model.predict(exp.observations, deterministic=True)[0], atol=1e-5)


def test_collect_with_custom_batch_policy():
    ds = collect_with("mujoco/InvertedPendulum-v5", lambda o, nz: np.zeros((len(o), 1)), n_steps=60, seed=0)
    assert isinstance(ds, OfflineDataset) and np.all(ds.actions == 0) and len(ds) == 60


def test_dataset_cli(tmp_path):
    from pbrl.app.cli import app

    runner = CliRunner()
    out = tmp_path / "d.hdf5"
    r = runner.invoke(app, ["dataset", "collect", "mujoco/Hopper-v5", "--out", str(out), "--steps", "400",
                            "--n-envs", "2", "--reference-episodes", "1"])
    assert r.exit_code == 0, r.output
    ds = load_d4rl(out)
    assert len(ds) == 400 and ds.metadata["ref_min_return"] > 0
    r = runner.invoke(app, ["dataset", "label", str(out), "--out", str(tmp_path / "p.h5"), "--pairs", "30",
                            "--segment-length", "5"])
    assert r.exit_code == 0, r.output
    from pbrl.preferences import PreferenceDataset

    prefs = PreferenceDataset.load(tmp_path / "p.h5")
    assert len(prefs) == 30 and prefs.metadata["dataset_id"] == ds.dataset_id
    assert np.array_equal(prefs.label, (prefs.b.returns() > prefs.a.returns()).astype(np.float32))
    png = tmp_path / "h.png"
    r = runner.invoke(app, ["dataset", "info", str(out), "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert f"{ds.n_episodes}" in r.output and png.stat().st_size > 1000
    r = runner.invoke(app, ["dataset", "label", str(out), "--out", str(tmp_path / "q.h5"),
                            "--indices-1", str(tmp_path / "x")])
    assert r.exit_code != 0 and "needs all of" in r.output
    # index-style import: start indices into the q-learning rows, 0 / 1 / -1 labels
    import pickle

    q = ds.qlearning_view()
    arrays = {"i1": np.array([0, 5, 9]), "i2": np.array([3, 1, 20]), "lab": np.array([1, -1, 0])}
    for k, v in arrays.items():
        (tmp_path / k).write_bytes(pickle.dumps(v))
    r = runner.invoke(app, ["dataset", "label", str(out), "--out", str(tmp_path / "imp.h5"),
                            "--indices-1", str(tmp_path / "i1"), "--indices-2", str(tmp_path / "i2"),
                            "--labels", str(tmp_path / "lab"), "--query-length", "4"])
    assert r.exit_code == 0, r.output
    imp = PreferenceDataset.load(tmp_path / "imp.h5")
    assert imp.label.tolist() == [1.0, 0.5, 0.0]
    assert np.array_equal(imp.b.obs[2], q["observations"][20:24])


def _make_datasets_module():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "make_datasets.py"
    spec = importlib.util.spec_from_file_location("make_datasets", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_make_datasets_rejects_bad_flags():
    mod = _make_datasets_module()
    for argv, msg in ((["--sac-steps", "0"], "--sac-steps must be >= 1"),
                      (["--metaworld", "mujoco/Hopper-v5"], "wrong list"),
                      (["--mujoco", "mujoco/Hoper-v5"], "unknown task id"),
                      (["--eval-every", "10", "--sac-steps", "5"], "must not exceed"),
                      (["--chunk-steps", "15000", "--eval-every", "10000"], "multiple of --eval-every")):
        with pytest.raises(SystemExit, match=msg):
            mod.parse_args(argv)


@pytest.mark.slow
def test_make_datasets_end_to_end(tmp_path):
    """D4RL's four kinds with a card each (sha256 of the file, the rebuild command), the expert SAC named in
    the metadata (regret labels find its critic), medium-expert = medium + expert; --resume keeps every file
    byte for byte, and a second run without --resume stops before any work."""

    from pbrl.envs.regret import dataset_regret_teacher
    from pbrl.preferences import PreferenceDataset

    mod = _make_datasets_module()
    out = tmp_path / "ds"
    argv = ["--mujoco", "mujoco/Hopper-v5", "--metaworld", "metaworld/button-press-v3",
            "--sac-steps", "400", "--chunk-steps", "200", "--eval-every", "200", "--eval-episodes", "1",
            "--learning-starts", "300", "--steps", "300", "--mw-steps", "600", "--pairs", "20", "40",
            "--segment-length", "10", "--ref-episodes", "1", "--n-envs", "2", "--workers", "1", "--out-dir", str(out)]
    assert mod.main(argv) == 0
    report = json.loads((out / "make_datasets.json").read_text())
    kinds = {(r["task"], k) for r in report["results"] for k in r["datasets"]}
    assert kinds == {("mujoco/Hopper-v5", k) for k in ("medium", "expert", "medium-replay", "medium-expert")} | {
        ("metaworld/button-press-v3", "scripted-noisy")}
    sha = {}
    for r in report["results"]:
        for rec in r["datasets"].values():
            ds = load_d4rl(rec["path"])
            card = json.loads(Path(rec["card"]).read_text())
            assert card["steps"] == len(ds) and card["episodes"] == ds.n_episodes
            assert card["rebuild_command"].startswith("python scripts/make_datasets.py") and len(card["sha256"]) == 64
            sha[rec["path"]] = card["sha256"]
            for n, f in rec["preferences"].items():
                prefs = PreferenceDataset.load(f)
                assert len(prefs) == int(n) and prefs.metadata["dataset_id"] == ds.dataset_id
            if r["task"] == "mujoco/Hopper-v5":
                assert card["normalised"]["reference_returns"] == [-20.272305, 3234.3]
                assert card["size_cut"] is None or "D4RL" in card["size_cut"]
                assert dataset_regret_teacher(ds).value_source.startswith("sac-critic:")
    hop = {k: load_d4rl(out / "mujoco_Hopper-v5" / f"{k}.hdf5") for k in ("medium", "expert", "medium-expert")}
    assert len(hop["medium"]) == len(hop["expert"]) == 300 and len(hop["medium-expert"]) == 600
    assert (out / "make_datasets.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="--resume"):
        mod.main(argv)
    written = {p: Path(p).stat().st_mtime_ns for p in sha}
    assert mod.main(argv + ["--resume"]) == 0
    from pbrl.app.dataset_cards import sha256_of

    assert all(sha256_of(p) == h for p, h in sha.items())
    assert {p: Path(p).stat().st_mtime_ns for p in sha} == written  # kept, not written again (Meta-World's too)
    again = json.loads((out / "make_datasets.json").read_text())
    mw = next(r for r in again["results"] if r["task"] == "metaworld/button-press-v3")["datasets"]["scripted-noisy"]
    assert mw["success_by_noise"] and mw["steps"] == 600


def test_make_datasets_resume_keeps_a_finished_metaworld_file(tmp_path):
    """``--resume`` keeps a finished Meta-World dataset as it is (it was collected and written again)."""
    mod = _make_datasets_module()
    argv = ["--mujoco", "--metaworld", "metaworld/button-press-v3", "--mw-steps", "300", "--pairs", "10",
            "--segment-length", "10", "--ref-episodes", "1", "--n-envs", "2", "--workers", "1",
            "--out-dir", str(tmp_path)]
    assert mod.main(argv) == 0
    files = sorted((tmp_path / "metaworld_button-press-v3").iterdir())
    written = {p: p.stat().st_mtime_ns for p in files}
    assert mod.main(argv + ["--resume"]) == 0
    assert {p: p.stat().st_mtime_ns for p in files} == written
    # another task built into the same folder: make_datasets.json keeps the first task's results beside it
    other = ["--mujoco", "--metaworld", "metaworld/drawer-open-v3", *argv[3:]]
    assert mod.main(other) == 0
    report = json.loads((tmp_path / "make_datasets.json").read_text())
    assert [r["task"] for r in report["results"]] == ["metaworld/button-press-v3", "metaworld/drawer-open-v3"]
    assert report["args"]["metaworld"] == ["metaworld/drawer-open-v3"]
