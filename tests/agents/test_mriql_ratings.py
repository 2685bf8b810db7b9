"""MR+IQL with ratings (RbRL offline): rated segments of a dataset, the reward model fitted with the rating
loss relabels the data, IQL learns the better action; end to end through `pbrl train offline --teacher
rating` and from a ratings file."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pbrl.agents.iql import MRIQL
from pbrl.app.cli import app
from pbrl.envs.datasets import OfflineDataset, rate_dataset, save_d4rl
from pbrl.ratings import RatingDataset
from pbrl.teachers import RatingTeacher, make_teacher

FAST = dict(hidden=(32, 32), batch_size=64, tau=0.05, lr=1e-3)


def bandit(n_episodes: int = 60, length: int = 10, seed: int = 0) -> OfflineDataset:
    """Episodes of a contextual bandit: action +-0.8, reward 1 iff the action is positive."""
    rng = np.random.default_rng(seed)
    T = n_episodes * length
    obs = rng.normal(size=(T, 3)).astype(np.float32)
    act = (0.8 * rng.choice([-1.0, 1.0], size=(T, 1)) + 0.05 * rng.normal(size=(T, 1))).astype(np.float32)
    timeouts = np.zeros(T, bool)
    timeouts[length - 1 :: length] = True
    return OfflineDataset(obs, act, (act[:, 0] > 0).astype(np.float32), np.zeros(T, bool), timeouts,
                          next_observations=np.roll(obs, -1, axis=0))


def test_rate_dataset_samples_segments_inside_episodes_and_rates_them():
    ds = bandit()
    r = rate_dataset(ds, make_teacher("rating", n_classes=3, seed=0), 90, segment_length=5, seed=1)
    assert isinstance(r, RatingDataset) and len(r) == 90 and r.n_classes == 3
    starts = r.segments.index
    assert np.all(starts // 10 == (starts + 4) // 10)  # never across an episode boundary
    np.testing.assert_array_equal(r.segments.reward, ds.rewards[starts[:, None] + np.arange(5)])
    assert r.metadata["n_queried"] == 90 and r.metadata["teacher"] == "rating"
    ret = r.segments.reward.sum(1)
    assert ret[r.rating == 2].min() >= ret[r.rating == 0].max()  # classes follow the returns
    again = rate_dataset(ds, make_teacher("rating", n_classes=3, seed=0), 90, segment_length=5, seed=1)
    np.testing.assert_array_equal(again.rating, r.rating)
    strat = rate_dataset(ds, RatingTeacher(n_classes=3), 90, segment_length=5, seed=1, stratified=True)
    assert strat.metadata["sampling"] == "stratified"
    with pytest.raises(TypeError, match="needs a rating teacher"):
        rate_dataset(ds, "oracle", 10, segment_length=5)


def test_mriql_learns_the_better_action_from_ratings_only():
    ds = bandit()
    # 300 clips watched, as many as the 150 pairs of the preference version of this test
    ratings = rate_dataset(ds, RatingTeacher(n_classes=3), 300, segment_length=5, seed=0)
    blind = OfflineDataset(ds.observations, ds.actions, np.zeros(len(ds)), ds.terminals, ds.timeouts,
                           next_observations=ds.next_observations)  # the true reward is hidden
    agent = MRIQL.from_dataset(blind, **FAST, reward_epochs=30, reward_model_kwargs=dict(hidden=(32, 32)))
    before = float(agent.predict(np.zeros((64, 3), np.float32))[0].mean())
    agent.fit(blind, ratings, steps=200, progress=False)
    assert agent.reward_fitted and agent.reward_fit_info["accuracy"] > 0.8
    zeros = np.zeros((1, 3), np.float32)
    assert agent.reward_model.predict(zeros, np.full((1, 1), 0.8, np.float32))[0] > \
        agent.reward_model.predict(zeros, np.full((1, 1), -0.8, np.float32))[0]
    obs = np.random.default_rng(5).normal(size=(256, 3)).astype(np.float32)
    after = float(agent.predict(obs, deterministic=True)[0].mean())
    assert after > 0.4 and after > before + 0.3, (before, after)  # the data's good action is +0.8, the bad -0.8


def test_ratings_need_the_ensemble_and_the_agents_sizes():
    ds = bandit()
    ratings = rate_dataset(ds, RatingTeacher(n_classes=2), 20, segment_length=5, seed=0)
    pt = MRIQL.from_dataset(ds, hidden=(8,), reward_model="transformer", reward_model_kwargs={"size": "small"})
    with pytest.raises(ValueError, match="learns from preference pairs; ratings train the ensemble"):
        pt.fit(ds, ratings, steps=1, progress=False)
    with pytest.raises(ValueError, match="RatingDataset is empty"):
        MRIQL.from_dataset(ds, hidden=(8,)).fit(ds, RatingDataset.empty(5, 3, 1, 2), steps=1, progress=False)
    other = bandit()
    wide = OfflineDataset(np.zeros((len(other), 4), np.float32), other.actions, other.rewards, other.terminals,
                          other.timeouts)
    with pytest.raises(ValueError, match="rated segments have obs_dim=4"):
        MRIQL.from_dataset(ds, hidden=(8,)).fit(ds, rate_dataset(wide, RatingTeacher(), 10, 5), steps=1, progress=False)


def test_pbrl_train_offline_with_a_rating_teacher_and_with_a_ratings_file(tmp_path):
    from pbrl.envs.collect import collect

    data = save_d4rl(collect("mujoco/Reacher-v5", "random", n_steps=300, seed=0), tmp_path / "reacher.hdf5")
    common = ["--dataset", str(data), "--task", "mujoco/Reacher-v5", "--segment-length", "10", "--steps", "30",
              "--eval-every", "30", "--checkpoint-every", "30", "--n-eval-episodes", "1", "--quiet",
              "-s", "agent_kwargs.hidden=[16,16]", "-s", "agent_kwargs.reward_epochs=3"]
    runner = CliRunner()
    d = tmp_path / "run"
    res = runner.invoke(app, ["train", "offline", "--teacher", "rating", "--n-classes", "4", "--total-feedback", "40",
                              "-o", str(d), *common])
    assert res.exit_code == 0, res.output
    ratings = RatingDataset.load(d / "labels.h5")
    assert len(ratings) == 40 and ratings.n_classes == 4
    assert (d / "agent.pt").exists() and (d / "metrics.json").exists()
    # the same ratings given as a file: no teacher is asked, the file's labels are the run's
    d2 = tmp_path / "from_file"
    res = runner.invoke(app, ["train", "offline", "--labels", str(d / "labels.h5"), "-o", str(d2), *common])
    assert res.exit_code == 0, res.output
    back = RatingDataset.load(d2 / "labels.h5")
    np.testing.assert_array_equal(back.rating, ratings.rating)
    agent = MRIQL.load(d2 / "agent.pt")
    assert agent.reward_fitted and agent.num_updates == 30
