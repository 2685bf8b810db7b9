"""DeepMind Control tasks (dmc/<domain>-<task>): registry, step/reset semantics, seeding, returns in
[0, 1000], clips rendered from their states, and exact save/restore of the physics state."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

pytest.importorskip("dm_control")
os.environ.setdefault("MUJOCO_GL", "osmesa")

from pbrl.envs import episode_length, is_dmc, list_tasks, make_env, make_vec_env, rollout  # noqa: E402

BPREF = ("dmc/walker-walk", "dmc/cheetah-run", "dmc/quadruped-walk")


def test_dmc_tasks_are_registered():
    dmc = list_tasks("dmc")
    assert set(BPREF) <= set(dmc) and len(dmc) > 40
    assert all(is_dmc(t) and episode_length(t) == 1000 for t in dmc)
    assert not any("lqr" in t for t in dmc)  # no time limit and unbounded cost in DMC: not registered
    assert set(dmc) <= set(list_tasks())
    assert not any(is_dmc(t) for t in list_tasks("mujoco"))
    with pytest.raises(ValueError, match="did you mean dmc/walker-walk"):
        make_env("dmc/walker-wlk")
    with pytest.raises(TypeError, match="unexpected arguments for a DMC task"):
        make_env("dmc/walker-walk", frame_skip=2)


def test_suite_time_limits_are_1000_steps():
    """DMC's own limit (time_limit / control_timestep) is the 1000 steps the registry imposes."""
    from dm_control import suite

    for task in BPREF:
        domain, name = task.split("/")[1].split("-")
        assert suite.load(domain, name)._step_limit == 1000


@pytest.mark.parametrize("task", BPREF)
def test_step_reset_semantics_and_random_returns(task):
    env = make_env(task, seed=0)
    obs, info = env.reset(seed=0)
    u = env.unwrapped
    assert obs.dtype == np.float32 and obs.ndim == 1 and obs.shape == env.observation_space.shape
    assert env.observation_space.dtype == np.float32 and env.action_space.dtype == np.float32
    from dm_control import suite

    spec = suite.load(*task.split("/")[1].split("-")).action_spec()  # DMC's own bounds ([-1, 1] but quadruped)
    np.testing.assert_array_equal(env.action_space.low, np.broadcast_to(spec.minimum, spec.shape).astype(np.float32))
    np.testing.assert_array_equal(env.action_space.high, np.broadcast_to(spec.maximum, spec.shape).astype(np.float32))
    assert info["success"] is False
    assert info["qpos"].shape == (u.model.nq,) and info["qvel"].shape == (u.model.nv,)
    np.testing.assert_array_equal(info["qpos"], u.data.qpos)  # the state is the live physics'
    (tr,) = rollout(env, "random", n_episodes=1, seed=0)
    assert len(tr) == 1000 and not tr.terminated  # cut by the time limit, never terminated
    assert tr.qpos.shape == (1000, u.model.nq) and tr.qvel.shape == (1000, u.model.nv)
    assert not tr.success.any()
    assert np.all((tr.reward >= 0.0) & (tr.reward <= 1.0))
    assert 0.0 <= tr.reward.sum() <= 1000.0
    assert np.isfinite(tr.obs).all() and tr.obs.dtype == np.float32
    # the step after the 1000th: a fresh episode after reset
    env2 = make_env(task, seed=1)
    env2.reset(seed=1)
    for t in range(1000):
        obs, r, term, trunc, info = env2.step(env2.action_space.sample())
        assert not term and trunc == (t == 999)
        assert isinstance(r, float) and isinstance(info["success"], bool)
    obs, info = env2.reset()
    assert obs.shape == env2.observation_space.shape
    assert env2.unwrapped.data.time < 1.0  # a new episode starts near t = 0
    env.close()
    env2.close()


def test_passes_gymnasiums_env_checker():
    from gymnasium.utils.env_checker import check_env

    env = make_env("dmc/walker-walk", render_mode="rgb_array", width=32, height=32)
    check_env(env.unwrapped)  # reset/step API, seeding, spaces, and gym.make(env.spec) recreates it
    env.close()


def test_determinism_under_a_seed():
    for task in ("dmc/walker-walk", "dmc/quadruped-walk"):
        runs = []
        for _ in range(2):
            env = make_env(task, seed=3)
            runs.append(rollout(env, "random", n_steps=1100, seed=3))  # crosses into a second episode
        a, b = runs
        assert len(a) == len(b) == 2
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.obs, y.obs)
            np.testing.assert_array_equal(x.reward, y.reward)
            np.testing.assert_array_equal(x.qpos, y.qpos)
        assert not np.array_equal(a[0].obs[0], a[1].obs[0]), "episodes must start from different states"
        other = rollout(make_env(task, seed=4), "random", n_steps=5, seed=4)
        assert not np.array_equal(other[0].obs[0], a[0].obs[0]), "a different seed must give a different start"


def test_vec_env_passes_state_and_success():
    venv = make_vec_env("dmc/cheetah-run", n_envs=2, seed=0)
    obs = venv.reset()
    assert obs.shape == (2, 17) and obs.dtype == np.float32
    _, rew, _, infos = venv.step(np.zeros((2, 6), np.float32))
    assert rew.shape == (2,) and all(i["success"] is False and i["qpos"].shape == (9,) for i in infos)
    venv.close()


def test_render_frames_and_clips_from_states(tmp_path):
    """The labelling page's renderer replays a DMC segment's qpos/qvel into the task's MuJoCo model."""
    from pbrl.label.render import ClipRenderer, task_fps

    env = make_env("dmc/walker-walk", seed=0)
    (tr,) = rollout(env, "random", n_steps=24, seed=0)
    r = ClipRenderer("dmc/walker-walk", width=64, height=48)
    frames = r.render_frames(tr.qpos, tr.qvel)
    assert frames.shape == (24, 48, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 5.0, "frames must show something"
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0, "the walker must move"
    np.testing.assert_array_equal(r.render_frames(tr.qpos[:1], tr.qvel[:1])[0], frames[0])  # states, not history
    path = r.render_clip(tr.qpos[:8], tr.qvel[:8], tmp_path / "clip.mp4")
    assert path.stat().st_size > 0 and path.read_bytes()[4:8] == b"ftyp"
    with pytest.raises(ValueError, match="states do not fit"):
        r.render_frames(tr.qpos[:, :3], tr.qvel)
    r.close()
    assert task_fps("dmc/cheetah-run") == 30.0  # 1 / 0.01 s capped at 30
    # the env renders by itself too (run videos), at the size it is given
    renv = make_env("dmc/quadruped-walk", seed=0, render_mode="rgb_array", width=32, height=24)
    renv.reset(seed=0)
    assert renv.render().shape == (24, 32, 3)
    renv.close()


def _checkpoint_functions():
    try:
        from pbrl.checkpoint import env_state, set_env_state
    except ImportError:
        from pbrl.app.runs import env_state, set_env_state
    return env_state, set_env_state


@pytest.mark.parametrize("task", ("dmc/quadruped-walk", "dmc/cheetah-run"))
def test_exact_save_and_restore_of_the_physics_state(task):
    """A checkpoint of a DMC env mid-episode restored into another env continues bit for bit, into the
    next episode too (DMC's task RNG, which draws initial states, is saved with it)."""
    env_state, set_env_state = _checkpoint_functions()
    env = make_env(task, seed=1)
    env.reset(seed=1)
    for _ in range(30):
        env.step(env.action_space.sample())
    state = env_state(env)
    acts = np.random.default_rng(0).uniform(-1, 1, (40,) + env.action_space.shape).astype(np.float32)

    def cont(e):
        out = [e.step(a) for a in acts]
        obs0, _ = e.reset()
        return out, obs0, e.step(acts[0])[0]

    ref, ref_reset, ref_next = cont(env)
    other = make_env(task, seed=7)
    other.reset(seed=7)
    for _ in range(11):
        other.step(other.action_space.sample())
    set_env_state(other, state)
    got, got_reset, got_next = cont(other)
    for (o1, r1, t1, tr1, i1), (o2, r2, t2, tr2, i2) in zip(ref, got):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2 and t1 == t2 and tr1 == tr2
        np.testing.assert_array_equal(i1["qpos"], i2["qpos"])
        np.testing.assert_array_equal(i1["qvel"], i2["qvel"])
    np.testing.assert_array_equal(ref_reset, got_reset)
    np.testing.assert_array_equal(ref_next, got_next)
    # the restored env still steps its own physics: model/data are DMC's, not a detached copy
    assert other.unwrapped.data is other.unwrapped._physics.data.ptr


def test_data_setter_copies_state_in_place():
    env = make_env("dmc/walker-walk", seed=0)
    env.reset(seed=0)
    u = env.unwrapped
    live = u.data
    snap = copy.copy(live)
    for _ in range(5):
        env.step(env.action_space.sample())
    assert not np.array_equal(live.qpos, snap.qpos)
    u.data = snap
    assert u.data is live
    np.testing.assert_array_equal(live.qpos, snap.qpos)
    np.testing.assert_array_equal(live.qvel, snap.qvel)
    np.testing.assert_array_equal(live.xpos, snap.xpos)


def test_collect_label_and_d4rl_round_trip(tmp_path):
    """Offline data on a DMC task: collected with states, labelled, written and read in D4RL's layout."""
    from pbrl.envs.datasets import collect, label_dataset, load_d4rl, save_d4rl

    ds = collect("dmc/cheetah-run", "random", n_steps=400, seed=0, n_envs=2)
    assert ds.n_episodes == 2 and ds.terminals.sum() == 0 and ds.infos["qpos"].shape == (400, 9)
    assert np.all((ds.rewards >= 0) & (ds.rewards <= 1))
    prefs = label_dataset(ds, "oracle", 8, segment_length=20, seed=0)
    assert len(prefs) == 8 and prefs.a.qpos.shape == (8, 20, 9)
    back = load_d4rl(save_d4rl(ds, tmp_path / "cheetah.hdf5"))
    np.testing.assert_array_equal(back.observations, ds.observations)
    np.testing.assert_array_equal(back.infos["qvel"], ds.infos["qvel"])
    assert back.task_id == "dmc/cheetah-run"


def test_run_killed_and_resumed_equals_uninterrupted_run(tmp_path):
    """`pbrl train online` on a DMC task, SIGKILLed after a checkpoint and resumed, gives the same labels
    and evaluation curve as an uninterrupted run (pbrl.app.runs checkpoints the DMC env's MjData)."""
    import json
    import signal

    from helpers import start_train, wait_for_checkpoint

    from pbrl.app import runs
    from pbrl.app.config import config_from_dict
    from pbrl.preferences import PreferenceDataset

    tiny = dict(
        task="dmc/cheetah-run", agent="pebble", total_timesteps=300, total_feedback=20, feedback_per_session=10,
        feedback_every=80, segment_length=10, max_episode_steps=50, checkpoint_every=100, eval_every=150,
        n_eval_episodes=1,
        learner_kwargs={"learning_starts": 50, "batch_size": 32, "buffer_size": 5000, "policy_kwargs": {"net_arch": [32, 32]}},
        reward_model_kwargs={"hidden": [32, 32]}, agent_kwargs={"unsup_steps": 50, "fit_kwargs": {"epochs": 5}},
    )
    ref = tmp_path / "ref"
    runs.train(config_from_dict(dict(tiny)), ref, verbose=False)
    cfg_path, d = tmp_path / "tiny.json", tmp_path / "killed"
    cfg_path.write_text(json.dumps(tiny))
    proc = start_train("online", "-c", str(cfg_path), "-o", str(d), "--quiet")
    wait_for_checkpoint(proc, d, 100, timeout=180)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((d / "status.json").read_text())["step"] < tiny["total_timesteps"]
    runs.resume(d, verbose=False)
    x, y = PreferenceDataset.load(ref / "labels.h5"), PreferenceDataset.load(d / "labels.h5")
    np.testing.assert_array_equal(x.label, y.label)
    np.testing.assert_array_equal(x.a.obs, y.a.obs)
    assert (ref / "curve.csv").read_text() == (d / "curve.csv").read_text()
