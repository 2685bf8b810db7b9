"""Labels of several users: user ids in the data model (HDF5, .npz, old files without them), the multi-user
teacher that gives them, and the two-goal point mass it was made for."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from helpers import synthetic_pairs

from pbrl.envs import make_env
from pbrl.envs.collect import collect
from pbrl.envs.datasets import label_dataset
from pbrl.envs.pointmass import GOALS, SUCCESS_RADIUS
from pbrl.multi_user import DEFAULT_GOALS, MultiUserTeacher
from pbrl.preferences import PreferenceDataset
from pbrl.segments import Segments
from pbrl.teachers import TEACHERS, make_teacher

# ---------------------------------------------------------------------------------------------- data model


def test_user_ids_round_trip_through_hdf5_and_npz(tmp_path):
    p = synthetic_pairs(6)
    users = ["ann", "bob", "ann", 3, "bob", "ann"]  # ints become their string
    d = PreferenceDataset(p.a, p.b, p.label, user=users)
    assert d.user.tolist() == ["ann", "bob", "ann", "3", "bob", "ann"] and d.users() == ["3", "ann", "bob"]
    back = PreferenceDataset.load(d.save(tmp_path / "u.h5"))
    assert back.user.tolist() == d.user.tolist()
    npz = PreferenceDataset.from_npz(d.to_npz(tmp_path / "u.npz"))
    assert npz.user.tolist() == d.user.tolist()
    # subsets, swaps, per-user views and appends keep them aligned with the pairs
    assert d.subset([1, 4]).user.tolist() == ["bob", "bob"] and d.swapped().user.tolist() == d.user.tolist()
    assert len(d.of_user("ann")) == 3 and set(d.of_user("ann").user) == {"ann"}
    d.append(p.a[:2], p.b[:2], [1.0, np.nan], user=["cid", "dan"])  # the skipped query's user goes with it
    assert d.user.tolist()[-1] == "cid" and len(d) == 7
    with pytest.raises(ValueError, match="without user ids"):
        d.append(p.a[:1], p.b[:1], [1.0])
    with pytest.raises(ValueError, match="no pairs of user 'eve'"):
        d.of_user("eve")


def test_files_without_user_ids_load_with_none(tmp_path):
    p = synthetic_pairs(4)
    path = p.save(tmp_path / "old.h5")  # what every pbrl before user ids wrote
    with h5py.File(path, "r") as f:
        assert "user" not in f
    assert PreferenceDataset.load(path).user is None
    with_users = PreferenceDataset(p.a, p.b, p.label, user=["a", "b", "a", "b"]).save(tmp_path / "new.h5")
    with h5py.File(with_users, "a") as f:  # an older file: the same layout without the user dataset
        del f["user"]
    old = PreferenceDataset.load(with_users)
    assert old.user is None and np.array_equal(old.label, p.label)
    np.savez(tmp_path / "old.npz", obs_1=p.a.obs, obs_2=p.b.obs, action_1=p.a.act, action_2=p.b.act, label=p.label)
    assert PreferenceDataset.from_npz(tmp_path / "old.npz").user is None
    np.savez(tmp_path / "bad.npz", obs_1=p.a.obs, obs_2=p.b.obs, action_1=p.a.act, action_2=p.b.act, label=p.label,
             user=np.array(["a"]))
    with pytest.raises(ValueError, match="bad.npz: user must have 4 entries"):
        PreferenceDataset.from_npz(tmp_path / "bad.npz")


# ---------------------------------------------------------------------------------------------- teacher


def _segments_at(points: np.ndarray) -> Segments:
    obs = np.asarray(points, np.float32)[:, None, :].repeat(3, axis=1)  # [N, H=3, 2], standing still
    return Segments(obs=obs, act=np.zeros((len(obs), 3, 2), np.float32), reward=np.zeros((len(obs), 3), np.float32))


def test_multi_user_teacher_answers_each_query_as_one_user():
    assert np.array_equal(np.asarray(DEFAULT_GOALS, np.float32), GOALS)  # the teacher's default is the task's
    assert TEACHERS["multi_user"] == "pbrl.multi_user:MultiUserTeacher"
    t = make_teacher("multi_user", seed=3)
    assert isinstance(t, MultiUserTeacher) and t.names == ["user0", "user1"]
    n = 200
    a, b = _segments_at(np.tile([[-1.0, 1.0]], (n, 1))), _segments_at(np.tile([[1.0, 1.0]], (n, 1)))
    labels, users = t.answer(a, b)
    # a is at goal 0, b at goal 1: user0 prefers a (0.0), user1 prefers b (1.0)
    assert set(users) == {"user0", "user1"} and 60 < (users == "user0").sum() < 140
    assert np.all(labels[users == "user0"] == 0.0) and np.all(labels[users == "user1"] == 1.0)
    again = make_teacher("multi_user", seed=3).answer(a, b)
    assert np.array_equal(again[0], labels) and np.array_equal(again[1], users)  # the same seed, the same answers
    only1 = MultiUserTeacher(mix=[0.0, 1.0], names=["left", "right"])
    assert set(only1.answer(a, b)[1]) == {"right"}
    fns = MultiUserTeacher(reward_fns=[lambda s: s.obs[..., 1], lambda s: -s.obs[..., 1]], mix=[1.0, 0.0])
    up, down = _segments_at([[0.0, 0.0]]), _segments_at([[0.0, 1.0]])
    assert fns.answer(up, down)[0].tolist() == [1.0]
    with pytest.raises(ValueError, match="mix must be 2 probabilities"):
        MultiUserTeacher(mix=[0.5, 0.6])
    with pytest.raises(ValueError, match="obs_dim=1"):
        t.answer(*(Segments(obs=np.zeros((1, 2, 1)), act=np.zeros((1, 2, 1)), reward=np.zeros((1, 2))),) * 2)


# ---------------------------------------------------------------------------------------------- task


def test_two_goal_point_mass_and_its_dataset():
    env = make_env("pointmass/two-goal:goal=1", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,) and obs.dtype == np.float32 and np.all(np.abs(obs) <= 0.1)
    done, t, success, ret = False, 0, False, 0.0
    while not done:  # straight to goal 1
        obs, r, term, trunc, info = env.step(np.clip((GOALS[1] - obs) / 0.1, -1, 1))
        ret, success, done, t = ret + r, success or info["success"], term or trunc, t + 1
        assert set(info) >= {"qpos", "qvel", "success"}
    assert t == 50 and success and np.linalg.norm(obs - GOALS[1]) < SUCCESS_RADIUS
    assert make_env("pointmass/two-goal:goal=0", seed=0).step([1.0, 1.0])[4]["success"] is False
    with pytest.raises(ValueError, match="goal"):
        make_env("pointmass/two-goal:goal=2")
    ds = collect("pointmass/two-goal", "scripted", n_steps=1000, seed=0, noise=[0.3])
    ends = ds.observations[ds.episode_bounds[1]]
    assert (ends[:, 0] < -0.5).any() and (ends[:, 0] > 0.5).any()  # episodes reach both goals
    prefs = label_dataset(ds, "multi_user", 40, segment_length=5, seed=0)
    assert prefs.user is not None and set(prefs.users()) == {"user0", "user1"}


def test_a_checkpoint_pickled_before_user_ids_unpickles_with_user_none():
    """Online runs checkpoint their PreferenceDataset with pickle; one written before the ``user`` field existed
    must resume (it raised AttributeError: 'PreferenceDataset' object has no attribute 'user')."""
    import pickle

    import numpy as np

    from pbrl.preferences import PreferenceDataset
    from pbrl.segments import Segments

    rng = np.random.default_rng(0)
    seg = lambda: Segments(rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 1)), rng.normal(size=(3, 4)))  # noqa: E731
    ds = PreferenceDataset(seg(), seg(), [0.0, 1.0, 0.5])
    del ds.__dict__["user"]  # the object as the old class built it
    old = pickle.loads(pickle.dumps(ds))
    assert old.user is None and len(old) == 3
    assert old.append(seg(), seg(), [1.0, 1.0, 0.0]) == 3 and len(old) == 6  # the resumed run keeps labelling
