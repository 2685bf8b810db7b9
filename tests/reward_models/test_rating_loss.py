"""The RbRL rating loss: boundaries and logits against hand-computed values, and a reward learned from
ratings alone whose segment returns rank-correlate with the true ones on a toy problem."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.reward_models import RatingBatch, RatingLoss, RatingTrainer, RewardEnsemble
from pbrl.reward_models.ratings import class_boundaries, normalised_returns, rating_logits
from pbrl.segments import Segments
from pbrl.teachers import RatingTeacher


def test_boundaries_match_the_label_shares():
    norm = normalised_returns(torch.tensor([[3.0, 1.0, 2.0, 5.0, 4.0]]))  # -> 0.5, 0, 0.25, 1, 0.75
    np.testing.assert_allclose(norm.numpy(), [[0.5, 0.0, 0.25, 1.0, 0.75]])
    y = torch.tensor([[0, 0, 1, 2, 2]])  # two bad, one average, two good
    b = class_boundaries(norm, y, 3)
    # top of class 0 = 2nd smallest (0.25), top of class 1 = 3rd smallest (0.5)
    np.testing.assert_allclose(b.numpy(), [[0.0, 0.25, 0.5, 1.0]])
    # an empty class has zero width; an empty lowest class sits at 0
    np.testing.assert_allclose(class_boundaries(norm, torch.tensor([[1, 1, 1, 2, 2]]), 3).numpy(), [[0, 0, 0.5, 1]])


def test_logits_and_loss_by_hand():
    b = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    q = rating_logits(torch.tensor([[0.1]]), b, k=30.0)[0, 0]
    want = [-30 * (0.1 - 0.0) * (0.1 - 0.25), -30 * (0.1 - 0.25) * (0.1 - 0.5), -30 * (0.1 - 0.5) * (0.1 - 1.0)]
    np.testing.assert_allclose(q.numpy(), want, rtol=1e-6)
    assert q.argmax() == 0  # inside class 0's interval: the only positive logit

    class Linear:  # a "reward model" whose per-step reward is the first input feature
        def _pair_rewards(self, x, sample=False):
            return x[..., 0], None

    x = torch.tensor([[[[0.0]], [[1.0]], [[2.0]], [[4.0]]]])  # M=1, B=4, H=1, in=1 -> returns 0, 1, 2, 4
    y = torch.tensor([[0, 0, 1, 1]])
    loss = RatingLoss(n_classes=2, k=10.0)(Linear(), RatingBatch(x=x, y=y))
    norm = np.array([0, 0.25, 0.5, 1.0])
    bounds = [0.0, 0.25, 1.0]  # top of class 0 = 2nd smallest normalised return
    logits = np.stack([-10 * (norm - bounds[i]) * (norm - bounds[i + 1]) for i in range(2)], 1)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(loss.item(), -logp[np.arange(4), [0, 0, 1, 1]].mean(), rtol=1e-5)


def _toy(n, seed):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 8, 4)).astype(np.float32)
    act = rng.normal(size=(n, 8, 2)).astype(np.float32)
    w = np.array([1.0, -0.5, 0.3, 0.0])
    return Segments(obs=obs, act=act, reward=np.tanh(obs @ w + 0.5 * act[..., 0]))


def test_learns_a_reward_that_ranks_segments_like_the_true_one():
    train, test = _toy(400, 0), _toy(300, 1)
    ds = RatingDataset(train, RatingTeacher(n_classes=4).rate(train), 4)
    rm = RewardEnsemble(4, 2, n_members=2, hidden=(32, 32), seed=0)
    true = test.reward.sum(1)
    before = spearmanr(rm.segment_returns(test).mean(0), true).statistic
    out = rm.fit(ds, epochs=40, batch_size=64, early_stop_accuracy=None, val_fraction=0.2)
    after = spearmanr(rm.segment_returns(test).mean(0), true).statistic
    assert after > 0.85 and after > before + 0.3, (before, after)
    assert out["accuracy"] > 0.6 and out["val_accuracy"] > 0.5 and out["epochs"] == 40
    assert len(out["member_accuracy"]) == 2 and np.isfinite(out["loss"])


def test_fit_is_seeded():
    seg = _toy(64, 2)
    ds = RatingDataset(seg, RatingTeacher(n_classes=3).rate(seg), 3)
    outs = []
    for _ in range(2):
        rm = RewardEnsemble(4, 2, hidden=(16,), seed=7)
        rm.fit(ds, epochs=3, batch_size=16)
        outs.append(rm.predict(seg.obs, seg.act))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_errors():
    seg = _toy(10, 3)
    ds = RatingDataset(seg, np.arange(10) % 3, 3)
    rm = RewardEnsemble(4, 2, hidden=(8,))
    with pytest.raises(ValueError, match="built for 2 classes"):
        RatingTrainer([RatingLoss(n_classes=2)], epochs=1).fit(rm, ds)
    with pytest.raises(TypeError, match="RatingTrainer fits on a RatingDataset"):
        RatingTrainer(epochs=1).fit(rm, PreferenceDataset(seg, seg, np.ones(10)))
    with pytest.raises(ValueError, match="must start with a RatingLoss"):
        RatingTrainer([object()], epochs=1)
    with pytest.raises(ValueError, match="crop_range"):
        rm.fit(ds, crop_range=2)
    with pytest.raises(ValueError, match="empty RatingDataset"):
        rm.fit(RatingDataset.empty(8, 4, 2, 3))
    with pytest.raises(ValueError, match="obs_dim=4"):
        RewardEnsemble(5, 2).fit(ds)
    with pytest.raises(ValueError, match="positive number"):
        RatingLoss(k=0)
