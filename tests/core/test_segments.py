"""Segments, trajectories and segment-pair sampling."""

import numpy as np
import pytest

from pbrl.segments import Segments, Trajectory, sample_segment_pairs, sample_segments


def traj(T, od=3, ad=2, start=-1, seed=0):
    rng = np.random.default_rng(seed)
    return Trajectory(
        obs=np.arange(T)[:, None] * np.ones((1, od)) + seed * 1000,
        act=rng.normal(size=(T, ad)),
        reward=np.arange(T, dtype=float),
        success=np.arange(T) > T - 3,
        next_obs=np.full(od, T + seed * 1000.0),
        start=start,
    )


def test_windows_are_contiguous_slices_and_cover_all_starts():
    trs = [traj(10, start=0, seed=0), traj(4, start=10, seed=1), traj(2, start=14, seed=2)]
    segs = sample_segments(trs, 3000, 4, np.random.default_rng(0))
    assert segs.obs.shape == (3000, 4, 3) and segs.act.shape == (3000, 4, 2) and segs.reward.shape == (3000, 4)
    # each window: consecutive steps of one trajectory (obs encode the step index)
    steps = segs.obs[:, :, 0] % 1000
    np.testing.assert_array_equal(np.diff(steps, axis=1), 1)
    np.testing.assert_array_equal(segs.reward, steps)
    # 7 windows in traj 0, 1 in traj 1, none in traj 2 -> starts 0..6 and 10 in flat index
    assert set(np.unique(segs.index)) == set(range(7)) | {10}
    # uniform over windows: the single window of traj 1 is drawn ~1/8 of the time
    assert abs(np.mean(segs.index == 10) - 1 / 8) < 0.03
    # next_obs: the obs after the window, or the trajectory's final next_obs
    last = segs.index == 6
    np.testing.assert_array_equal(segs.next_obs[last, 0], 10.0)
    assert segs.success.dtype == bool


def test_pairs_deterministic_and_errors():
    trs = [traj(20, seed=s) for s in range(3)]
    a1, b1 = sample_segment_pairs(trs, 50, 5, np.random.default_rng(1))
    a2, b2 = sample_segment_pairs(trs, 50, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(a1.obs, a2.obs)
    np.testing.assert_array_equal(b1.act, b2.act)
    assert not np.array_equal(a1.obs, b1.obs)
    with pytest.raises(ValueError, match="no trajectory is long enough"):
        sample_segment_pairs(trs, 5, 25, 0)
    with pytest.raises(ValueError, match="length must be >= 1"):
        sample_segment_pairs(trs, 5, 0, 0)


def test_crop_concatenate_and_indexing():
    trs = [traj(30, start=0)]
    s = sample_segments(trs, 8, 10, 0)
    c = s.crop(np.array([0, 1, 2, 3, 0, 0, 0, 5]), 5)
    assert c.obs.shape == (8, 5, 3)
    np.testing.assert_array_equal(c.obs[1], s.obs[1, 1:6])
    np.testing.assert_array_equal(c.index, s.index + [0, 1, 2, 3, 0, 0, 0, 5])
    with pytest.raises(ValueError, match="inside segments"):
        s.crop(np.full(8, 6), 5)
    both = Segments.concatenate([s, s[:3]])
    assert len(both) == 11 and both.success is not None
    assert len(s[2]) == 1
    np.testing.assert_allclose(s.returns(), s.reward.sum(1))


def test_trajectory_validation():
    with pytest.raises(ValueError, match="disagree in length"):
        Trajectory(obs=np.zeros((5, 2)), act=np.zeros((4, 1)), reward=np.zeros(5))
    with pytest.raises(ValueError, match="non-finite"):
        Trajectory(obs=np.zeros((2, 2)), act=np.zeros((2, 1)), reward=[0.0, np.nan])
    with pytest.raises(ValueError, match="numeric"):
        Trajectory(obs=np.array([["a", "b"]]), act=np.zeros((1, 1)), reward=[0.0])


def test_reward_factors_travel_with_segments():
    from pbrl.preferences import PreferenceDataset
    from pbrl.segments import Segments, Trajectory, factor_array, sample_segment_pairs

    T = 30
    fwd, ctrl = np.arange(T, dtype=np.float32), -0.1 * np.arange(T, dtype=np.float32)
    tr = Trajectory(np.arange(T)[:, None].repeat(3, 1), np.zeros((T, 2)), fwd + ctrl,
                    factors={"reward_forward": fwd, "reward_ctrl": ctrl})
    a, b = sample_segment_pairs([tr], 6, 5, 0)
    assert a.factor_names == ("reward_forward", "reward_ctrl") and a.factors.shape == (6, 5)
    # each window's factors are the trajectory's at the same steps (obs[:, 0] is the step index)
    start = a.obs[:, 0, 0].astype(int)
    np.testing.assert_array_equal(a.factors["reward_forward"], fwd[start[:, None] + np.arange(5)])
    assert a[np.array([1, 2])].factors.shape == (2, 5) and a.crop(np.ones(6, int), 3).factors.shape == (6, 3)
    assert Segments.concatenate([a, b]).factors.shape == (12, 5)
    # a batch without factors, or with other factors, drops them on concatenation
    plain = Segments(a.obs, a.act, a.reward)
    assert Segments.concatenate([a, plain]).factors is None
    other = Segments(a.obs, a.act, a.reward, factors={"reward_survive": np.ones((6, 5))})
    assert Segments.concatenate([a, other]).factors is None
    ds = PreferenceDataset(a, b, np.ones(6, np.float32))
    assert ds.a.factors is not None and PreferenceDataset.empty(5, 3, 2).a.factors is None
    with pytest.raises(ValueError, match="structured array"):
        factor_array("factors", np.zeros((6, 5)), (6, 5))
    with pytest.raises(ValueError, match=r"factors\['reward_ctrl'\] contains non-finite"):
        Trajectory(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), factors={"reward_ctrl": [0.0, np.nan]})
    with pytest.raises(ValueError, match="must have shape"):
        Trajectory(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), factors={"reward_ctrl": [0.0]})
