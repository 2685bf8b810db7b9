"""VPL: the losses against hand-computed values, bad input stopping before any work, the information-gain
selector, and the encoder telling two users apart on a toy problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pbrl.agents.vpl import (
    VPL,
    code_information_gain,
    gaussian_kl,
    label_vectors,
    latent_information_gain,
    vpl_loss,
)
from pbrl.envs.datasets import OfflineDataset
from pbrl.preferences import PreferenceDataset
from pbrl.queries import InformationGainSelector, make_selector
from pbrl.ratings import RatingDataset
from pbrl.segments import Segments

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden=(16, 16), batch_size=16, latent_dim=2, context_size=4, encoder_hidden=32, reward_batch_size=16,
            reward_lr=1e-2, reward_epochs=150, kl_weight=0.1)


# ---------------------------------------------------------------------------------------------- losses


def test_gaussian_kl_matches_hand_computation():
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # 1/2 [(1 + 1 - 1 - 0) + (2 + 0 - 1 - ln 2)] = 1 - ln(2) / 2; the prior itself has KL 0
    assert gaussian_kl(mean, logvar).tolist() == pytest.approx([1.0 - math.log(2.0) / 2, 0.0], rel=1e-6)


def test_vpl_loss_matches_hand_computation():
    ra, rb = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 0.0, 2.0]])  # [B=1, S=3]
    y = torch.tensor([[1.0, 0.0, 0.5]])
    mean, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # logits R_b - R_a = (1, -1, 0): -log s(1), -log(1 - s(-1)) = -log s(1), and the tie -log(1/2)
    nll = 2 * math.log(1 + math.exp(-1.0)) + math.log(2.0)
    kl = 1.0 - math.log(2.0) / 2
    loss, got_nll, got_kl = vpl_loss(ra, rb, y, mean, logvar, beta=0.5)
    assert float(loss) == pytest.approx(nll + 0.5 * kl, rel=1e-6)
    assert float(got_nll) == pytest.approx(nll, rel=1e-6) and float(got_kl) == pytest.approx(kl, rel=1e-6)
    # the label direction matters (1.0 = b preferred) and beta is not ignored
    assert float(vpl_loss(ra, rb, 1 - y, mean, logvar, 0.5)[0]) > float(loss)
    assert float(vpl_loss(ra, rb, y, mean, logvar, 2.0)[0]) == pytest.approx(nll + 2.0 * kl, rel=1e-6)
    # a batch is the mean over contexts
    two = vpl_loss(ra.repeat(2, 1), rb.repeat(2, 1), y.repeat(2, 1), mean.repeat(2, 1), logvar.repeat(2, 1), 0.5)[0]
    assert float(two) == pytest.approx(float(loss), rel=1e-6)


def test_information_gain_matches_hand_computation():
    # context 0: the two answers move the 1-d posterior to -1 and +1 (variance 1): mixture variance 2,
    # I = 1/2 (log 2 - 0); context 1: both answers give the same posterior: nothing is learnt
    mean = torch.tensor([[[-1.0], [0.3]], [[1.0], [0.3]]])  # [L=2, K=2, d=1]
    logvar = torch.zeros(2, 2, 1)
    got = latent_information_gain(mean, logvar)
    assert got.tolist() == pytest.approx([0.5 * math.log(2.0), 0.0], abs=1e-6)
    # answers that only shrink the posterior are informative too: var 1/4 from a mixture of variance 1/4
    shrink = latent_information_gain(torch.zeros(2, 1, 1), torch.full((2, 1, 1), math.log(0.25)))
    assert float(shrink) == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------- toy data


def two_user_problem(n_pairs: int = 160, seed: int = 0, H: int = 2):
    """1-d states; user ``"up"`` prefers higher states, user ``"down"`` lower ones; a dataset of the states."""
    rng = np.random.default_rng(seed)

    def seg(n):
        obs = rng.uniform(-1, 1, size=(n, H, 1)).astype(np.float32)
        return Segments(obs=obs, act=np.zeros((n, H, 1), np.float32), reward=obs[..., 0])

    a, b = seg(n_pairs), seg(n_pairs)
    user = np.where(np.arange(n_pairs) % 2 == 0, "up", "down")
    up = (b.reward.sum(1) > a.reward.sum(1)).astype(np.float32)
    label = np.where(user == "up", up, 1.0 - up)
    prefs = PreferenceDataset(a, b, label, user=user)
    T = 200
    obs = rng.uniform(-1, 1, size=(T, 1)).astype(np.float32)
    timeouts = np.zeros(T, bool)
    timeouts[9::10] = True
    ds = OfflineDataset(obs, rng.uniform(-1, 1, size=(T, 1)).astype(np.float32), np.zeros(T, np.float32),
                        np.zeros(T, bool), timeouts, next_observations=np.roll(obs, -1, axis=0))
    return ds, prefs


def test_bad_input_stops_before_any_work():
    ds, prefs = two_user_problem(40)
    agent = VPL.from_dataset(ds, **TINY)

    def fails(labels, match):
        with pytest.raises(ValueError, match=match) as e:
            agent.fit(ds, labels, steps=2, progress=False)
        assert "\n" not in str(e.value)
        assert agent.num_updates == 0 and agent.reward_model is None  # nothing was trained

    fails(PreferenceDataset(prefs.a, prefs.b, prefs.label), "needs the user id of every label")
    fails(RatingDataset(prefs.a, np.zeros(len(prefs), np.int64), n_classes=2), "preference pairs.*got ratings")
    few = prefs.subset(np.r_[np.arange(0, 40, 2), [1, 3]])  # user "down" has 2 pairs, a context needs 4
    fails(few, r"context_size=4.*'down' \(2\)")
    wide = PreferenceDataset(Segments(obs=np.zeros((4, 2, 3)), act=np.zeros((4, 2, 1)), reward=np.zeros((4, 2))),
                             Segments(obs=np.zeros((4, 2, 3)), act=np.zeros((4, 2, 1)), reward=np.zeros((4, 2))),
                             np.ones(4), user=["u"] * 4)
    fails(wide, "obs_dim=3")
    with pytest.raises(ValueError, match="one id per pair"):
        PreferenceDataset(prefs.a, prefs.b, prefs.label, user=["up"] * 3)
    with pytest.raises(ValueError, match="non-empty"):
        PreferenceDataset(prefs.a, prefs.b, prefs.label, user=[""] * len(prefs))
    with pytest.raises(ValueError, match="latent_sampling"):
        VPL(1, 1, latent_sampling="typo")


def test_vpl_tells_users_apart_and_keeps_its_reward_model(tmp_path):
    ds, prefs = two_user_problem(96)
    agent = VPL.from_dataset(ds, seed=0, **TINY)
    agent.fit(ds, prefs, steps=3, progress=False)
    assert agent.reward_fit_info["accuracy"] > 0.8  # one reward could not fit both users (about 0.5)
    grid = torch.linspace(-1, 1, 9)[:, None]
    slopes = {}
    for u in ("up", "down"):
        z = agent.set_user(prefs, u)
        with torch.no_grad():
            r = agent.reward_model.reward(agent.tensor(agent._norm_obs_np(grid.numpy())), agent.tensor(z)).numpy()
        slopes[u] = np.polyfit(grid[:, 0].numpy(), r, 1)[0]
    assert slopes["up"] > 0 > slopes["down"]  # each user's reward rises towards what that user prefers
    # the latent steers the policy: predict acts for the current user
    obs = ds.observations[:4]
    act_down = agent.predict(obs)[0]
    agent.set_user(prefs, "up")
    assert not np.allclose(act_down, agent.predict(obs)[0])
    # saved and loaded: the same reward model, latent and actions; a later fit keeps the reward model
    back = VPL.load(agent.save(tmp_path / "vpl.pt"))
    np.testing.assert_array_equal(back.predict(obs)[0], agent.predict(obs)[0])
    np.testing.assert_array_equal(back.latent, agent.latent)
    model = back.reward_model
    back.fit(ds, prefs, steps=2, progress=False)
    assert back.reward_model is model and back.num_updates == 5
    with pytest.raises(ValueError, match="at least one labelled pair"):
        agent.set_user(prefs.subset(np.arange(0)))


# ---------------------------------------------------------------------------------------------- selector


class _FakeLatentModel:
    """Scores a context by the sum of its pairs' first observations (so the best context is known)."""

    context_size = 3

    def information_gain(self, a, b, sets, rng, n_label_samples=50, estimator="moment", labels="uniform"):
        return a.obs[sets][..., 0, 0].sum(1)


def test_information_gain_selector_takes_whole_contexts_best_first():
    n = 12
    obs = np.arange(n, dtype=np.float32)[:, None, None]
    a = Segments(obs=obs, act=np.zeros((n, 1, 1)), reward=np.zeros((n, 1)))
    sel = make_selector("information_gain")
    assert isinstance(sel, InformationGainSelector)
    idx = sel.select(a, a, 6, reward_model=_FakeLatentModel(), rng=0)
    assert len(set(idx.tolist())) == 6
    # the pool is cut into 4 random contexts of 3; the chosen 6 are the two best contexts, whole
    perm = np.random.default_rng(0).permutation(n).reshape(4, 3)
    best = perm[np.argsort(-perm.sum(1))[:2]].reshape(-1)
    assert idx.tolist() == best.tolist()
    with pytest.raises(ValueError, match="information_gain"):
        sel.select(a, a, 3, reward_model=object())


def test_vpl_information_gain_prefers_pairs_that_split_the_users():
    ds, prefs = two_user_problem(96)
    agent = VPL.from_dataset(ds, seed=0, **TINY)
    agent.fit(ds, prefs, steps=1, progress=False)
    rng = np.random.default_rng(1)
    far = rng.uniform(-1, 1, size=(4, 2, 1)).astype(np.float32)  # states far apart: users disagree
    a = Segments(obs=np.concatenate([far, np.zeros((4, 2, 1), np.float32)]), act=np.zeros((8, 2, 1)),
                 reward=np.zeros((8, 2)))
    b = Segments(obs=np.concatenate([-far, np.zeros((4, 2, 1), np.float32)]), act=np.zeros((8, 2, 1)),
                 reward=np.zeros((8, 2)))
    gain = agent.information_gain(a, b, np.array([[0, 1, 2, 3], [4, 5, 6, 7]]), rng=0)
    assert gain.shape == (2,) and gain[0] > gain[1] >= 0  # identical segments tell nothing about the user


def test_several_seeds_at_once_match_the_single_seed_agent():
    ds, prefs = two_user_problem(48)
    kw = {**TINY, "reward_epochs": 2, "encoder_hidden": 16}
    many = VPL.from_dataset(ds, seeds=(0, 1), **kw)
    many.fit(ds, prefs, steps=3, progress=False)
    one = VPL.from_dataset(ds, seed=1, **kw)
    one.fit(ds, prefs, steps=3, progress=False)
    obs = ds.observations[:4]
    np.testing.assert_array_equal(many.split()[1].predict(obs)[0], one.predict(obs)[0])


def test_label_vectors_are_distinct_as_the_authors_draw_them():
    assert label_vectors(3, 50).tolist() == [[(i >> j) & 1 for j in range(3)] for i in range(8)]  # all 2^3
    for seed in range(5):
        v = label_vectors(8, 50, seed)
        assert v.shape == (50, 8) and len(np.unique(v, axis=0)) == 50 and set(np.unique(v)) <= {0.0, 1.0}
    assert len(np.unique(label_vectors(70, 20, 0), axis=0)) == 20  # beyond 2^62 too


def test_information_gain_encodes_distinct_label_vectors():
    # 10 of the 2^4 label vectors: drawn with replacement, a repeat is all but certain (P(none) = 0.04)
    ds, prefs = two_user_problem(48)
    agent = VPL.from_dataset(ds, seed=0, **{**TINY, "reward_epochs": 2})
    agent.fit(ds, prefs, steps=1, progress=False)
    seen = []
    encode = agent.reward_model.encode
    agent.reward_model.encode = lambda oa, ob, y: (seen.append(y.numpy()), encode(oa, ob, y))[1]
    for seed in range(5):
        agent.information_gain(prefs.a, prefs.b, np.arange(8).reshape(2, 4), rng=seed, n_label_samples=10)
    for y in seen:  # [L * K, S]: label vector l of set k at row l * K + k
        assert len(np.unique(y[::2], axis=0)) == 10


def test_fewer_queries_than_a_context_are_repeated_to_fill_it():
    ds, prefs = two_user_problem(48)
    agent = VPL.from_dataset(ds, seed=0, **{**TINY, "reward_epochs": 20})
    agent.fit(ds, prefs, steps=1, progress=False)
    # a user who answered 2 pairs: the encoder reads them twice over (pairs 0, 1, 0, 1)
    two = prefs.subset(np.arange(2))
    np.testing.assert_allclose(agent.posterior(two)[0], agent.posterior(prefs.subset([0, 1, 0, 1]))[0], atol=1e-6)
    # a set of 2 candidate pairs is scored as that context, its labels repeated with it (all 2^2 vectors)
    got = agent.information_gain(prefs.a, prefs.b, np.array([[0, 1], [2, 3]]), rng=0)
    y = torch.tensor([[0.0, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]])
    means, logvars = [], []
    for k in ([0, 1, 0, 1], [2, 3, 2, 3]):
        oa, ob = (agent.tensor(agent._norm_obs_np(s.obs[k]))[None].repeat(4, 1, 1, 1) for s in (prefs.a, prefs.b))
        m, lv = agent.reward_model.encode(oa, ob, y)
        means.append(m)
        logvars.append(lv)
    want = latent_information_gain(torch.stack(means, 1), torch.stack(logvars, 1)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="1 <= m <= context_size=4"):
        agent.information_gain(prefs.a, prefs.b, np.arange(10).reshape(2, 5))
    # the selector asked for 2 queries scores sets of 2 (not the first 2 of the best set of S)
    n = 12
    obs = np.arange(n, dtype=np.float32)[:, None, None]
    a = Segments(obs=obs, act=np.zeros((n, 1, 1)), reward=np.zeros((n, 1)))
    idx = make_selector("information_gain").select(a, a, 2, reward_model=_FakeLatentModel(), rng=0)
    perm = np.random.default_rng(0).permutation(n).reshape(6, 2)
    assert idx.tolist() == perm[np.argmax(perm.sum(1))].tolist()


def test_segment_returns_score_segments_under_a_latent():
    ds, prefs = two_user_problem(96)
    agent = VPL.from_dataset(ds, seed=0, **TINY)
    agent.fit(ds, prefs, steps=1, progress=False)
    acc = {}
    for u in ("up", "down"):
        z = agent.set_user(prefs, u)
        mine = prefs.of_user(u)
        correct = (agent.segment_returns(mine.b) > agent.segment_returns(mine.a)) == (mine.label == 1.0)
        acc[u] = correct.mean()
        other = agent.segment_returns(mine.b, -z)
        assert other.shape == (len(mine),) and not np.allclose(other, agent.segment_returns(mine.b))
    assert min(acc.values()) > 0.8


def test_code_information_gain_matches_the_authors_formula_and_ignores_the_means():
    # 2 label vectors, d = 2: variances (1, 1) and (1/4, 1/4); total variances 2 and 1/2, mean 5/4
    logvar = torch.log(torch.tensor([[[1.0, 1.0]], [[0.25, 0.25]]]))  # [L=2, K=1, d=2]
    want = math.log(2 * math.pi * 1.25) - 0.5 * (2 * math.log(2 * math.pi) + 2 * math.log(2 * math.pi * 0.25))
    far = torch.tensor([[[-3.0, 0.0]], [[3.0, 0.0]]])
    assert float(code_information_gain(torch.zeros(2, 1, 2), logvar)) == pytest.approx(want, rel=1e-6)
    assert float(code_information_gain(far, logvar)) == pytest.approx(want, rel=1e-6)  # the means do not enter
    assert float(latent_information_gain(far, logvar)) > float(latent_information_gain(torch.zeros(2, 1, 2), logvar))
    sel = make_selector("information_gain", estimator="code")
    assert sel.estimator == "code"
    with pytest.raises(ValueError, match="estimator"):
        make_selector("information_gain", estimator="typo")


def test_predictive_labels_follow_the_model_and_repeat_with_their_pair():
    ds, prefs = two_user_problem(96)
    agent = VPL.from_dataset(ds, seed=0, **{**TINY, "latent_sampling": "posterior"})
    agent.fit(ds, prefs, steps=1, progress=False)
    seen = []
    encode = agent.reward_model.encode
    agent.reward_model.encode = lambda oa, ob, y: (seen.append(y.numpy()), encode(oa, ob, y))[1]
    sets = np.arange(6).reshape(3, 2)
    gain = agent.information_gain(prefs.a, prefs.b, sets, rng=0, n_label_samples=200, labels="predictive")
    y = seen[-1].reshape(200, 3, 4)
    assert gain.shape == (3,) and np.array_equal(y[..., :2], y[..., 2:])  # pairs (0, 1, 0, 1): the same answers
    # the answers follow the users' rewards: an "up" latent prefers b exactly when the up-user does
    up = (prefs.b.reward.sum(1) > prefs.a.reward.sum(1))[:6].reshape(3, 2).astype(float)
    agree = [np.mean(np.all(y[i, :, :2] == up, axis=1) | np.all(y[i, :, :2] == 1 - up, axis=1)) for i in range(200)]
    assert np.mean(agree) > 0.65  # one of the two users' answers to both pairs: 0.5 for labels drawn alike
    with pytest.raises(ValueError, match="label sampling"):
        agent.information_gain(prefs.a, prefs.b, sets, labels="typo")
