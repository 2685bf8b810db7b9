"""OPPO: HIM / triplet / norm losses by hand, z* finding the preferred behaviour, windows, fit/predict/save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import contrast_problem

from pbrl.agents.oppo import OPPO, SegmentEncoder, context_norm_loss, him_loss, triplet_loss
from pbrl.preferences import PreferenceDataset

# test-sized: small nets and batches, and no lr warmup (the authors' 10,000-update warmup outlasts these tests)
SMALL = dict(hidden=(32, 32), encoder_hidden=(32, 32), z_dim=4, seg_batch_size=16, pair_batch_size=16, warmup_steps=0)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------- losses


def test_triplet_loss_matches_hand_computation():
    anchor = torch.tensor([0.0, 0.0])
    pos = torch.tensor([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])
    neg = torch.tensor([[0.0, 1.0], [3.0, 4.0], [0.0, 1.5]])
    # max(5 - 1 + 1, 0) = 5;  max(1 - 5 + 1, 0) = 0;  max(1 - 1.5 + 1, 0) = 0.5
    assert float(triplet_loss(anchor, pos, neg, margin=1.0)) == pytest.approx((5.0 + 0.0 + 0.5) / 3)
    assert float(triplet_loss(anchor, pos, neg, margin=0.0)) == pytest.approx(4.0 / 3)
    assert float(triplet_loss(anchor, pos[:0], neg[:0])) == 0.0


def test_him_loss_is_masked_action_mse():
    pred = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [9.0, 9.0]]])
    act = torch.zeros(2, 2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # valid squared errors: 1 + 0 + 8 over 3 steps x 2 dims
    assert float(him_loss(pred, act, mask)) == pytest.approx(9.0 / 6)
    assert float(him_loss(pred, act)) == pytest.approx((1 + 0 + 8 + 162) / 8)


def test_context_norm_loss():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert float(context_norm_loss(z)) == pytest.approx((16.0 + 1.0) / 2)


def test_encoder_masks_steps_past_the_episode_end():
    torch.manual_seed(0)
    enc = SegmentEncoder(3, 2, z_dim=4, hidden=(16, 16))
    obs, act = torch.randn(2, 5, 3), torch.randn(2, 5, 2)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]] * 2)
    z1 = enc(obs, act, mask)
    obs2 = obs.clone()
    obs2[:, 3:] = 100.0  # garbage past the mask changes nothing
    torch.testing.assert_close(enc(obs2, act, mask), z1)
    assert not torch.allclose(enc(obs2, act), z1)


# ---------------------------------------------------------------------------------------------- toy problem


def toy_problem(n_pairs: int = 48, H: int = 8, seed: int = 0):
    """Half the segments act +0.6, half -0.6 (random states); the +0.6 segment is always preferred."""
    return contrast_problem(n_pairs, H, good=0.6, noise=0.05, seed=seed)


def test_optimal_context_selects_the_preferred_behaviour():
    ds, prefs, obs, act, sign = toy_problem()
    agent = OPPO.from_dataset(ds, seed=0, lr=1e-3, **SMALL)
    info = agent.fit(ds, prefs, steps=400, progress=False)
    assert info["losses"]["him_loss"] < 0.1  # the contextual policy reconstructs both behaviours
    z = agent.context_of(obs, act)
    z_star = agent.optimal_context
    d_good = np.linalg.norm(z[sign > 0] - z_star, axis=1).mean()
    d_bad = np.linalg.norm(z[sign < 0] - z_star, axis=1).mean()
    assert d_good < d_bad
    probe = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    assert agent.predict(probe)[0].mean() > 0.3
    # with every label flipped, z* lands on the other behaviour
    flipped = OPPO.from_dataset(ds, seed=0, lr=1e-3, **SMALL)
    flipped.fit(ds, PreferenceDataset(prefs.a, prefs.b, 1.0 - prefs.label), steps=400, progress=False)
    assert flipped.predict(probe)[0].mean() < -0.3


def test_him_windows_stay_inside_episodes():
    ds, prefs, *_ = toy_problem(n_pairs=8, H=8)
    agent = OPPO.from_dataset(ds, seed=0, context_length=6, normalize_obs=False, **SMALL)
    agent.fit(ds, prefs, steps=1, progress=False)
    obs, act, mask = agent._sample_windows()
    assert obs.shape == (16, 6, 3) and mask.shape == (16, 6)
    # within the valid part every row is the next step of one episode of the flat dataset
    flat = torch.as_tensor(ds.observations)
    for i in range(16):
        n = int(mask[i].sum())
        start = int(torch.nonzero((flat == obs[i, 0]).all(1))[0])
        assert start // 8 == (start + n - 1) // 8  # same episode (episodes are 8 steps here)
        torch.testing.assert_close(obs[i, :n], flat[start : start + n])
        assert n == min(6, 8 - start % 8)


# ---------------------------------------------------------------------------------------------- live task


def test_fit_predict_evaluate_policy_and_save_load(tmp_path):
    from stable_baselines3.common.evaluation import evaluate_policy

    from pbrl.envs import make_env
    from pbrl.envs.datasets import collect, label_dataset

    ds = collect("metaworld/reach-v3", policy="scripted", n_steps=1000, seed=0, noise=[0.0, 1.0])
    prefs = label_dataset(ds, "oracle", 64, segment_length=10, seed=0)
    agent = OPPO.from_dataset(ds, seed=3, **SMALL)
    info = agent.fit(ds, prefs, steps=200, progress=False)
    assert info["num_updates"] == 200 and np.isfinite(info["losses"]["triplet_loss"])
    mean, _ = evaluate_policy(agent, make_env("metaworld/reach-v3", seed=0), n_eval_episodes=1)
    assert np.isfinite(mean)
    obs = ds.observations[:50]
    act, state = agent.predict(obs)
    assert state is None and act.shape == (50, 4) and np.all(np.abs(act) <= 1.0)
    agent.save(tmp_path / "oppo.pt")
    loaded = OPPO.load(tmp_path / "oppo.pt")
    np.testing.assert_array_equal(loaded.optimal_context, agent.optimal_context)
    np.testing.assert_array_equal(loaded.predict(obs)[0], act)
    # training continues from the checkpoint identically
    agent.fit(ds, prefs, steps=5, progress=False)
    loaded.fit(ds, prefs, steps=5, progress=False)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])


def test_defaults_are_the_authors_d4rl_settings():
    """Kang et al.'s code (oppo/scripted/gym/args.py, experiment.py): z_dim 8, K 20, batch 64, lr 1e-4,
    z* lr 1e-3, z* ~ N(0, 2^2), AdamW with weight decay 1e-4, 10k-update linear warmup of the policy."""
    a = OPPO(3, 1)
    assert (a.z_dim, a.context_length, a.seg_batch_size, a.pair_batch_size) == (8, 20, 64, 64)
    assert a.lr == 1e-4 and a.z_lr == 1e-3 and a.weight_decay == 1e-4 and a.warmup_steps == 10_000
    assert (a.margin, a.pref_coeff, a.norm_coeff, a.max_grad_norm) == (1.0, 0.1, 0.1, 0.25)
    assert all(isinstance(o, torch.optim.AdamW) for o in a.optims.values())
    assert a.optims["z_star"].param_groups[0]["lr"] == 1e-3
    norms = [np.linalg.norm(OPPO(3, 1, seed=s).optimal_context) for s in range(40)]
    assert 4.5 < np.mean(norms) < 6.5  # E||z*|| = 2 * E||N(0, I_8)|| ~ 5.5
    assert a.policy_lr(0) == pytest.approx(1e-8) and a.policy_lr(4_999) == pytest.approx(5e-5)
    assert a.policy_lr(10_000) == a.policy_lr(50_000) == 1e-4


def test_warmup_applies_to_the_policy_only():
    ds, prefs, *_ = toy_problem(n_pairs=8)
    agent = OPPO.from_dataset(ds, seed=0, **{**SMALL, "warmup_steps": 100})
    agent.fit(ds, prefs, steps=3, progress=False)
    enc_group, pol_group = agent.optims["model"].param_groups
    assert enc_group["lr"] == 1e-4 and pol_group["lr"] == pytest.approx(1e-4 * 3 / 100)


def test_bad_input_fails_before_work():
    ds, prefs, *_ = toy_problem(n_pairs=4)
    with pytest.raises(ValueError, match="z_dim"):
        OPPO(3, 1, z_dim=0)
    with pytest.raises(ValueError, match="margin"):
        OPPO(3, 1, margin=-1.0)
    with pytest.raises(ValueError, match="context_length"):
        OPPO(3, 1, context_length=0)
    agent = OPPO.from_dataset(ds, **SMALL)
    equal = PreferenceDataset(prefs.a, prefs.b, np.full(len(prefs), 0.5, np.float32))
    with pytest.raises(ValueError, match="0.5"):
        agent.fit(ds, equal, steps=5, progress=False)
    with pytest.raises(ValueError, match="obs_dim"):
        OPPO(5, 1, **SMALL).fit(ds, prefs, steps=5, progress=False)
    with pytest.raises(ValueError, match="expected obs"):
        agent.context_of(np.zeros((2, 3)), np.zeros((2, 1)))
    assert agent.num_updates == 0
