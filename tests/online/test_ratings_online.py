"""PEBBLE with ratings (RbRL online): single-segment queries, a rating teacher, the rating loss, replay
relabelling; agents with pair-only mechanisms refuse a rating teacher; a run killed with SIGKILL resumes
to exactly the uninterrupted run (the same ratings, the same evaluation curve)."""


import numpy as np
import pytest
from helpers import sigkill_then_resume, tiny_online_config

from pbrl.agents.registry import agent_names, get_agent
from pbrl.app import runs
from pbrl.app.config import config_from_dict
from pbrl.envs import make_env
from pbrl.online import RatingCallback
from pbrl.online.ratings import select_segments
from pbrl.ratings import RatingDataset
from pbrl.reward_models import RewardEnsemble
from pbrl.segments import Segments
from pbrl.teachers import make_teacher

TASK = "mujoco/HalfCheetah-v5"
SMALL = dict(
    total_feedback=40, feedback_per_session=10, feedback_every=80, segment_length=10, seed=0,
    learner_kwargs={"learning_starts": 50, "batch_size": 32, "buffer_size": 5000, "policy_kwargs": {"net_arch": [32, 32]}},
    reward_model_kwargs={"hidden": (32, 32)},
)
TINY = tiny_online_config(teacher="rating", n_classes=3)


def test_disagreement_picks_the_segments_the_members_disagree_on():
    rng = np.random.default_rng(0)
    seg = Segments(obs=rng.normal(size=(30, 4, 3)), act=rng.normal(size=(30, 4, 2)), reward=np.zeros((30, 4)))
    rm = RewardEnsemble(3, 2, n_members=3, hidden=(16,), seed=0)
    std = rm.segment_returns(seg).std(0)
    idx = select_segments("disagreement", seg, 5, rm)
    assert set(idx) == set(np.argsort(-std)[:5])
    np.testing.assert_array_equal(select_segments("uniform", seg, 5), np.arange(5))
    with pytest.raises(ValueError, match="does not work on single segments"):
        select_segments("entropy", seg, 5, rm)


def test_pebble_learns_from_ratings_end_to_end():
    env = make_env(TASK, seed=0, max_episode_steps=50)
    PEBBLE = get_agent("pebble")
    agent = PEBBLE(env, make_teacher("rating", n_classes=3), unsup_steps=50, fit_kwargs={"epochs": 5}, **SMALL)
    assert isinstance(agent.callback, RatingCallback)
    agent.learn(400)
    cb = agent.callback
    ratings = agent.preferences
    assert isinstance(ratings, RatingDataset) and ratings is cb.ratings
    assert cb.asked == 40 and len(ratings) == 40 and ratings.n_classes == 3 and cb.updates == 4
    assert ratings.segment_length == 10 and set(np.unique(ratings.rating)) <= {0, 1, 2}
    assert 0.0 <= cb.last_fit["accuracy"] <= 1.0 and cb.history[-1]["labels_used"] == 40
    # the teacher's classes follow the segments' true returns
    ret = ratings.segments.reward.sum(1)
    assert ret[ratings.rating == 2].mean() > ret[ratings.rating == 0].mean()
    # the replay buffer holds the learned reward (relabelled after the last refit)
    buf = agent.model.replay_buffer
    n = buf.pos
    obs, act = buf.observations[:n, 0], buf.actions[:n, 0]
    from pbrl.online import unscale_action

    want = agent.reward_model.predict(obs, unscale_action(act, agent.model.action_space))
    np.testing.assert_allclose(buf.rewards[:n, 0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", agent_names("online"))
def test_every_online_agent_either_takes_ratings_or_refuses_them_clearly(name):
    cls = get_agent(name, "online")
    env = make_env(TASK, seed=0, max_episode_steps=50)
    ppo = {"n_steps": 80, "batch_size": 40, "n_epochs": 2, "policy_kwargs": {"net_arch": [16, 16]}}
    kw = dict(SMALL, learner_kwargs=ppo if cls.learner_cls.__name__ == "PPO" else dict(SMALL["learner_kwargs"]))
    if "rating" in cls.feedback_kinds:
        agent = cls(env, make_teacher("rating", n_classes=4), **kw)
        assert isinstance(agent.callback, RatingCallback) and agent.preferences.n_classes == 4
    else:
        with pytest.raises(ValueError, match="learns from preference feedback.*gives ratings"):
            cls(env, make_teacher("rating"), **kw)


def test_rating_agent_refuses_pair_selectors():
    with pytest.raises(ValueError, match="does not work on single segments"):
        get_agent("pebble")(make_env(TASK, seed=0, max_episode_steps=50), make_teacher("rating"),
                            selector="kcenter", **SMALL)


# ---------------------------------------------------------------------------- exact resume after SIGKILL


def test_sigkill_then_resume_equals_uninterrupted_rating_run(tmp_path):
    ref = tmp_path / "ref"
    runs.train(config_from_dict(dict(TINY)), ref, verbose=False)
    d, metrics = sigkill_then_resume(TINY, tmp_path, 200)
    assert metrics["steps"] == TINY["total_timesteps"]
    x, y = RatingDataset.load(ref / "labels.h5"), RatingDataset.load(d / "labels.h5")
    assert len(x) == len(y) == 40 and x.n_classes == y.n_classes == 3
    np.testing.assert_array_equal(x.rating, y.rating)
    np.testing.assert_array_equal(x.segments.obs, y.segments.obs)
    assert (ref / "curve.csv").read_text() == (d / "curve.csv").read_text()
    assert runs.RunDir(d).status()["state"] == "finished"
