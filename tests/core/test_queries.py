"""Query selectors and the candidate pool."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import segment_pair

from pbrl.preferences import PreferenceDataset
from pbrl.queries import ENSEMBLE_SELECTORS, candidate_pairs, kcenter_greedy, make_selector, pair_features
from pbrl.reward_models import RewardEnsemble
from pbrl.segments import Segments, Trajectory


def pool(n=400, seed=0):
    """Two batches of n random 8-step segments (obs 3, act 2), true reward obs[..., 0]."""
    return segment_pair(n, H=8, obs_dim=3, act_dim=2, seed=seed)


@pytest.fixture(scope="module")
def trained():
    """A small ensemble trained on a few pairs, so members disagree off the training data."""
    a, b = pool(n=30, seed=1)
    ds = PreferenceDataset(a, b, (b.returns() > a.returns()).astype(np.float32))
    model = RewardEnsemble(3, 2, n_members=5, hidden=(32,), lr=3e-3, seed=0, output="linear")
    model.fit(ds, epochs=30, early_stop_accuracy=None)
    return model, ds


def _entropy(p):
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return -(q * np.log(q) + (1 - q) * np.log(1 - q))


def _min_pairwise(x):
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.sqrt(d[~np.eye(len(x), dtype=bool)].min())


def test_every_selector_returns_n_distinct_indices_deterministically(trained):
    model, ds = trained
    a, b = pool(seed=2)
    for name in ENSEMBLE_SELECTORS:  # information_gain needs a latent model: tests/agents/test_vpl.py
        sel = make_selector(name, epsilon=0.0) if name.startswith("gated_") else make_selector(name)
        idx = sel.select(a, b, 25, reward_model=model, labelled=ds, rng=7)
        assert idx.dtype == np.int64 and idx.shape == (25,), name  # epsilon 0: the gate passes every pair
        assert len(np.unique(idx)) == 25 and idx.min() >= 0 and idx.max() < 400, name
        np.testing.assert_array_equal(idx, sel.select(a, b, 25, reward_model=model, labelled=ds, rng=7))
        assert sel.select(a, b, 0, reward_model=model).shape == (0,)
        # the whole pool is a valid request
        assert len(np.unique(sel.select(a, b, 400, reward_model=model, labelled=ds, rng=0))) == 400


def test_disagreement_and_entropy_beat_uniform_on_their_scores(trained):
    model, _ = trained
    a, b = pool(seed=3)
    p = model.preference_probs(a, b)
    uni = make_selector("uniform").select(a, b, 40, rng=0)
    dis = make_selector("disagreement").select(a, b, 40, reward_model=model)
    ent = make_selector("entropy").select(a, b, 40, reward_model=model)
    std, h = p.std(0), _entropy(p).mean(0)
    assert std[dis].mean() > 1.5 * std[uni].mean()
    assert h[ent].mean() > h[uni].mean()
    # they pick exactly the top scores
    assert std[dis].min() >= np.sort(std)[-40]
    assert h[ent].min() >= np.sort(h)[-40] - 1e-12


def test_kcenter_spreads_its_picks():
    a, b = pool(n=300, seed=4)
    feats = pair_features(a, b)
    kc = make_selector("kcenter").select(a, b, 20, rng=0)
    uni = make_selector("uniform").select(a, b, 20, rng=0)
    assert _min_pairwise(feats[kc]) > _min_pairwise(feats[uni])


def test_kcenter_greedy_covers_clusters_and_avoids_labelled():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    x = (centres[rng.integers(0, 4, 400)] + 0.1 * rng.normal(size=(400, 2))).astype(np.float32)
    picks = kcenter_greedy(x, 4, rng=0)
    cluster = np.argmin(((x[picks, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert sorted(cluster) == [0, 1, 2, 3]
    # with clusters 0 and 1 already labelled, two picks go to clusters 2 and 3
    picks = kcenter_greedy(x, 2, existing=centres[:2], rng=0)
    cluster = np.argmin(((x[picks, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert sorted(cluster) == [2, 3]


def test_kcenter_measures_against_labelled_pairs():
    a, b = pool(n=60, seed=5)
    # the pool holds 40 labelled pairs again plus 20 new ones; k-center never re-asks a labelled pair
    la, lb = a[np.arange(40)], b[np.arange(40)]
    labelled = PreferenceDataset(la, lb, np.ones(40, np.float32))
    idx = make_selector("kcenter").select(a, b, 20, labelled=labelled, rng=0)
    assert set(idx.tolist()) == set(range(40, 60))
    idx2 = make_selector("kcenter").select(a, b, 20, labelled=(la, lb), rng=0)
    np.testing.assert_array_equal(np.sort(idx), np.sort(idx2))


def test_kcenter_with_score_keeps_the_top_half(trained):
    model, ds = trained
    a, b = pool(seed=6)
    p = model.preference_probs(a, b)
    for name, score in (("kcenter_disagreement", p.std(0)), ("kcenter_entropy", _entropy(p).mean(0))):
        idx = make_selector(name).select(a, b, 30, reward_model=model, labelled=ds, rng=0)
        top_half = set(np.argsort(-score, kind="stable")[:200].tolist())
        assert set(idx.tolist()) <= top_half, name
    idx = make_selector("kcenter_disagreement", pool_fraction=0.1).select(a, b, 30, reward_model=model, rng=0)
    assert set(idx.tolist()) <= set(np.argsort(-p.std(0), kind="stable")[:40].tolist())


def test_candidate_pairs_from_recent_episodes_only():
    trajs = [
        Trajectory(obs=np.full((30, 2), i, np.float32), act=np.zeros((30, 1)), reward=np.zeros(30))
        for i in range(6)
    ]
    a, b = candidate_pairs(trajs, 200, 10, np.random.default_rng(0), recent_episodes=2)
    ids = np.unique(np.concatenate([a.obs[:, 0, 0], b.obs[:, 0, 0]]))
    assert set(ids.tolist()) == {4.0, 5.0}
    a, b = candidate_pairs(trajs, 500, 10, np.random.default_rng(0))
    assert len(np.unique(a.obs[:, 0, 0])) == 6
    a2, _ = candidate_pairs(trajs, 500, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(a.obs, a2.obs)


def test_selector_errors():
    a, b = pool(n=10)
    with pytest.raises(ValueError, match="unknown query selector"):
        make_selector("random_walk")
    with pytest.raises(ValueError, match="needs reward_model"):
        make_selector("disagreement").select(a, b, 3)
    with pytest.raises(ValueError, match="pool of 10"):
        make_selector("uniform").select(a, b, 11)
    with pytest.raises(ValueError, match="non-negative integer"):
        make_selector("uniform").select(a, b, -1)
    with pytest.raises(ValueError, match="same size"):
        make_selector("uniform").select(a, b[np.arange(5)], 2)
    with pytest.raises(TypeError, match="Segments"):
        make_selector("uniform").select(np.zeros((10, 8, 3)), b, 2)
    with pytest.raises(ValueError, match="pool_fraction"):
        make_selector("kcenter", pool_fraction=0)
    with pytest.raises(TypeError, match="no options"):
        make_selector("uniform", pool_fraction=0.5)
    with pytest.raises(ValueError, match="recent_episodes"):
        candidate_pairs([Trajectory(np.zeros((20, 2)), np.zeros((20, 1)), np.zeros(20))], 5, 5, 0, recent_episodes=0)


# ------------------------------------------------------------------ randomised selection and the gate
class _FixedProbs:
    """A stand-in ensemble whose members' P[b > a] are given: ``p [M, N]``."""

    def __init__(self, p):
        self.p = np.asarray(p, np.float64)

    def preference_probs(self, a, b):
        return self.p[:, a.obs[:, 0, 0].astype(int)]


def _indexed_pool(n):
    """n pairs whose first observation is the pair's own index (so _FixedProbs can look it up)."""
    obs = np.zeros((n, 2, 1), np.float32)
    obs[:, 0, 0] = np.arange(n)
    seg = Segments(obs=obs, act=np.zeros((n, 2, 1), np.float32), reward=np.zeros((n, 2), np.float32))
    return seg, seg


def test_thompson_picks_pairs_the_sampled_members_disagree_on():
    # 3 members, 6 pairs; members 0 and 1 disagree (by 0.6) on pairs 0-2 only, member 2 agrees with member 0
    p = np.array([[0.8, 0.8, 0.8, 0.5, 0.5, 0.5],
                  [0.2, 0.2, 0.2, 0.5, 0.5, 0.5],
                  [0.8, 0.8, 0.8, 0.5, 0.55, 0.5]])
    a, b = _indexed_pool(6)
    sel = make_selector("thompson", threshold=0.3)
    picks, drawn = set(), set()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        members, d = sel.sampled_disagreement(p, np.random.default_rng(seed))
        drawn.add(tuple(members.tolist()))
        idx = sel.select(a, b, 2, reward_model=_FixedProbs(p), rng=rng)
        if tuple(members.tolist()) in ((0, 1), (1, 2)):  # these members disagree past 0.3 on pairs 0-2
            assert set(idx.tolist()) <= {0, 1, 2}
            picks.update(idx.tolist())
        else:  # members 0 and 2: spread 0.05 on pair 4 only, nothing passes: the largest spread first
            np.testing.assert_allclose(d, [0, 0, 0, 0, 0.05, 0], atol=1e-12)
            assert idx[0] == 4
    assert drawn == {(0, 1), (0, 2), (1, 2)}  # every pair of members gets drawn
    assert picks == {0, 1, 2}  # and the passing pairs are picked at random, not always the same


def test_gate_asks_only_where_members_disagree():
    p = np.array([[0.9, 0.5, 0.6, 0.1],
                  [0.1, 0.5, 0.6, 0.1]])
    a, b = _indexed_pool(4)
    # std over the two members: 0.4, 0, 0, 0 -> only pair 0 passes epsilon 0.02
    idx = make_selector("gated_uniform", epsilon=0.02).select(a, b, 4, reward_model=_FixedProbs(p), rng=0)
    assert idx.tolist() == [0]
    gate = make_selector("gated_disagreement")
    assert gate.may_skip and gate.inner.name == "disagreement" and gate.epsilon == 0.02
    assert gate.select(a, b, 2, reward_model=_FixedProbs(p)).tolist() == [0]
    # thompson inside the gate keeps its options
    assert make_selector("gated_thompson", threshold=0.2).inner.threshold == 0.2


def test_gated_and_thompson_errors():
    a, b = _indexed_pool(4)
    with pytest.raises(ValueError, match="epsilon must be a number in"):
        make_selector("gated_disagreement", epsilon=-0.1)
    with pytest.raises(ValueError, match="threshold must be a number in"):
        make_selector("thompson", threshold=1.5)
    with pytest.raises(ValueError, match="n_sampled"):
        make_selector("thompson", n_sampled=1)
    with pytest.raises(ValueError, match="reward model has 1"):
        make_selector("thompson").select(a, b, 2, reward_model=_FixedProbs(np.full((1, 4), 0.5)), rng=0)
    with pytest.raises(ValueError, match="a gate wraps one of"):
        from pbrl.queries import GatedSelector

        GatedSelector("kcenter")
    with pytest.raises(ValueError, match="needs reward_model"):
        make_selector("gated_uniform").select(a, b, 2)
