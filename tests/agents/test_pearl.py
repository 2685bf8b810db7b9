"""PEARL: cost matrices, the GW coupling, label transfer against hand-computed values, exact reproduction of
the source labels on the same task and on an isometric copy of it, the agent with zero target labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from pbrl.agents.pearl import (
    PEARL,
    cross_task_preference_alignment,
    gw_coupling,
    intra_task_costs,
    segment_features,
    source_preference_matrix,
    transfer_labels,
)
from pbrl.envs.datasets import collect, label_dataset, segments_at
from pbrl.preferences import PreferenceDataset
from pbrl.segments import Segments
from pbrl.teachers import make_teacher

SMALL = dict(hidden=(32, 32), batch_size=64, reward_epochs=10, reward_model_kwargs=dict(hidden=(32, 32)))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reacher():
    ds = collect("mujoco/Reacher-v5", "random", n_steps=1000, seed=0)
    return ds


@pytest.fixture(scope="module")
def distinct_prefs(reacher):
    """40 oracle-labelled pairs of 10-step Reacher segments, no segment used twice."""
    ds = reacher
    starts, _ = ds.episode_bounds
    windows = (starts[:, None] + np.arange(0, 40, 10)[None]).ravel()
    pick = np.random.default_rng(0).permutation(windows)[:80]
    a, b = segments_at(ds, pick[:40], 10), segments_at(ds, pick[40:], 10)
    return PreferenceDataset(a, b, make_teacher("oracle").label(a, b), metadata={"task_id": "mujoco/Reacher-v5"})


# ---------------------------------------------------------------------------------------------- pieces


def test_intra_task_costs_are_scaled_euclidean_distances():
    x = np.random.default_rng(0).normal(size=(6, 4))
    d = cdist(x, x)
    assert intra_task_costs(x) == pytest.approx(d / d.max(), abs=1e-9)
    assert np.allclose(np.diag(intra_task_costs(x)), 0.0)


def test_segment_features_flatten_and_standardise():
    rng = np.random.default_rng(0)
    seg = Segments(obs=rng.normal(size=(5, 3, 2)) * 10 + 4, act=rng.normal(size=(5, 3, 1)), reward=np.zeros((5, 3)))
    f = segment_features(seg)
    assert f.shape == (5, 3 * 3)
    assert f.mean(0) == pytest.approx(np.zeros(9), abs=1e-9) and f.std(0) == pytest.approx(np.ones(9), abs=1e-6)


def test_gw_coupling_has_uniform_marginals_and_matches_a_space_to_itself():
    x = np.random.default_rng(1).normal(size=(12, 3))
    c = intra_task_costs(x)
    T = gw_coupling(c, c)
    assert T.sum(1) == pytest.approx(np.full(12, 1 / 12), abs=1e-8)
    assert T.sum(0) == pytest.approx(np.full(12, 1 / 12), abs=1e-8)
    assert np.array_equal(T.argmax(1), np.arange(12))
    # different sizes: still a coupling of the uniform marginals
    T2 = gw_coupling(c, intra_task_costs(x[:8]))
    assert T2.shape == (12, 8) and T2.sum(0) == pytest.approx(np.full(8, 1 / 8), abs=1e-8)


def test_source_preference_matrix_sets_labelled_pairs_both_ways():
    P, W = source_preference_matrix(4, np.array([0, 2]), np.array([1, 3]), np.array([1.0, 0.5]))
    assert P[0, 1] == 1.0 and P[1, 0] == 0.0 and P[2, 3] == 0.5 and P[3, 2] == 0.5
    assert W.sum() == 4 and W[0, 1] == W[1, 0] == W[2, 3] == W[3, 2] == 1
    comp = np.full((4, 4), 0.3)
    P2, W2 = source_preference_matrix(4, np.array([0]), np.array([1]), np.array([0.0]), completion=comp)
    assert P2[0, 1] == 0.0 and P2[1, 0] == 1.0 and P2[2, 3] == 0.3
    assert np.all(np.diag(W2) == 0) and W2.sum() == 12


def test_transfer_labels_are_the_transport_weighted_sums_of_source_labels():
    # 3 source segments, 2 target segments
    T = np.array([[0.3, 0.0], [0.1, 0.2], [0.0, 0.4]])
    P = np.array([[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]])
    W = np.ones((3, 3)) - np.eye(3)
    got = transfer_labels(T, P, W, np.array([0, 1]), np.array([1, 0]))
    for m, (ta, tb) in enumerate([(0, 1), (1, 0)]):
        num = sum(T[i, ta] * T[k, tb] * W[i, k] * P[i, k] for i in range(3) for k in range(3))
        den = sum(T[i, ta] * T[k, tb] * W[i, k] for i in range(3) for k in range(3))
        assert got[m] == pytest.approx(num / den)
    # no weight at all -> 0.5
    assert transfer_labels(T, P, np.zeros((3, 3)), np.array([0]), np.array([1])) == pytest.approx([0.5])


# ---------------------------------------------------------------------------------------------- alignment


def test_same_task_transfer_reproduces_the_source_labels(distinct_prefs):
    prefs = distinct_prefs
    assert len(np.unique(prefs.label)) > 1
    probs, T = cross_task_preference_alignment(prefs, prefs.a, prefs.b)
    assert probs == pytest.approx(prefs.label, abs=1e-9)
    # completing the source preferences with a model keeps the labelled pairs' votes exact here
    comp = np.full((2 * len(prefs), 2 * len(prefs)), 0.5)
    probs2, _ = cross_task_preference_alignment(prefs, prefs.a, prefs.b, completion=comp)
    assert probs2 == pytest.approx(prefs.label, abs=1e-9)


def test_transfer_to_an_isometric_task_with_other_dimensions_recovers_the_labels(distinct_prefs):
    """A 'target task' whose observations are the source's with dimensions permuted, rescaled, shifted and a
    constant extra dimension appended, and whose pairs come in another order, gets the source labels back."""
    prefs = distinct_prefs
    N = len(prefs)
    rng = np.random.default_rng(3)
    perm = rng.permutation(prefs.a.obs_dim)
    scale = rng.uniform(0.5, 3.0, size=prefs.a.obs_dim)

    def warp(seg: Segments) -> Segments:
        obs = seg.obs[..., perm] * scale + 1.0
        obs = np.concatenate([obs, np.full(obs.shape[:-1] + (1,), 7.0)], axis=-1)
        return Segments(obs=obs, act=seg.act[..., ::-1], reward=seg.reward)

    order = rng.permutation(N)
    ta, tb = warp(prefs.a)[order], warp(prefs.b)[order]
    assert ta.obs_dim == prefs.a.obs_dim + 1
    probs, _ = cross_task_preference_alignment(prefs, ta, tb)
    assert probs == pytest.approx(prefs.label[order], abs=1e-9)


# ---------------------------------------------------------------------------------------------- agent


@pytest.fixture(scope="module")
def swimmer():
    return collect("mujoco/Swimmer-v5", "random", n_steps=600, seed=1)


def test_pearl_trains_on_another_tasks_labels_with_zero_target_labels(reacher, swimmer, tmp_path):
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from pbrl.envs import make_env
    from pbrl.reward_models import GaussianRewardModel

    source = label_dataset(reacher, "oracle", 40, segment_length=10, seed=0)
    agent = PEARL.from_dataset(swimmer, **SMALL, n_target_pairs=30, seed=0)
    info = agent.fit(swimmer, source, steps=60, progress=False)
    t = agent.transferred
    assert len(t) == 30 and t.segment_length == 10 and t.a.obs_dim == swimmer.obs_dim
    np.testing.assert_allclose(t.label, agent.transferred_probs, rtol=1e-6)  # soft labels, not rounded
    assert agent.transferred_probs.shape == (30,) and np.all((agent.transferred_probs >= 0) & (agent.transferred_probs <= 1))
    assert info["transfer_accuracy"] is None or 0.0 <= info["transfer_accuracy"] <= 1.0
    assert isinstance(agent.reward_model, GaussianRewardModel)
    # the learned reward (not the true one) is what IQL trained on
    view = swimmer.qlearning_view(keep_timeouts=True)
    learned = agent.reward_model.predict(view["observations"], view["actions"])
    assert not np.allclose(learned, view["rewards"])
    mean, _ = evaluate_policy(agent, Monitor(make_env("mujoco/Swimmer-v5", seed=0)), n_eval_episodes=1)
    assert np.isfinite(mean)
    back = PEARL.load(agent.save(tmp_path / "pearl.pt"))
    obs = swimmer.observations[:10]
    assert np.array_equal(back.predict(obs)[0], agent.predict(obs)[0])
    assert isinstance(back.reward_model, GaussianRewardModel)
    assert np.array_equal(back.reward_model.predict(obs, swimmer.actions[:10]), agent.reward_model.predict(obs, swimmer.actions[:10]))


def test_pearl_few_target_labels_and_errors(reacher, swimmer):
    source = label_dataset(reacher, "oracle", 20, segment_length=10, seed=0)
    few = label_dataset(swimmer, "oracle", 5, segment_length=10, seed=1)
    agent = PEARL.from_dataset(swimmer, **SMALL, n_target_pairs=10)
    agent.fit(swimmer, source, steps=5, progress=False, target_preferences=few)
    assert len(agent.transferred) == 10
    with pytest.raises(ValueError, match="source task's labelled pairs"):
        agent.fit(swimmer, None, steps=5)
    with pytest.raises(ValueError, match="set segment_length=5"):
        agent.fit(swimmer, source, steps=5, target_preferences=label_dataset(swimmer, "oracle", 3, segment_length=5))
    with pytest.raises(TypeError, match="target_preferences"):
        agent.fit(swimmer, source, steps=5, target_preferences="labels.h5")
    with pytest.raises(ValueError, match="n_target_pairs"):
        PEARL(3, 1, n_target_pairs=0)
    with pytest.raises(ValueError, match="label_margin"):
        PEARL(3, 1, label_margin=0.7)


def test_transferred_labels_stay_soft_into_the_robust_reward_fit(reacher, swimmer, monkeypatch):
    """The Gaussian reward model is fitted on the CPA probabilities themselves (the paper), not on labels
    rounded to {0, 0.5, 1}; rounding is an opt-in ablation (label_margin)."""
    source = label_dataset(reacher, "oracle", 20, segment_length=10, seed=0)
    seen = {}
    for margin in (None, 0.1):
        agent = PEARL.from_dataset(swimmer, **SMALL, n_target_pairs=20, seed=0, label_margin=margin)
        fit = agent.reward_model.fit

        def spy(dataset, *args, _fit=fit, _m=margin, **kw):
            seen[_m] = np.array(dataset.label)
            return _fit(dataset, *args, **kw)

        monkeypatch.setattr(agent.reward_model, "fit", spy)
        agent.fit(swimmer, source, steps=2, progress=False)
        probs = agent.transferred_probs
    assert not np.all(np.isin(probs, (0.0, 0.5, 1.0)))  # CPA gives probabilities strictly between the labels
    np.testing.assert_allclose(seen[None], probs, rtol=1e-6)
    assert set(np.unique(seen[0.1])) <= {0.0, 0.5, 1.0}
    from pbrl.agents.pearl import TransferredPreferences

    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        TransferredPreferences(source.a, source.b, np.full(len(source), 1.5))
