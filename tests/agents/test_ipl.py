"""IPL: each loss against hand-computed values, the critic objective end to end, learning the preferred
action without any reward, the AWAC variant, SB3 evaluate_policy, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import bandit_dataset

from pbrl.agents.ipl import (
    IPL,
    IPLAWAC,
    bradley_terry_loss,
    chi2_regularizer,
    implicit_reward,
    segment_logits,
)
from pbrl.envs.datasets import OfflineDataset, collect, label_dataset

SMALL = dict(hidden=(32, 32), batch_size=64, pref_batch_size=8)
FAST = dict(SMALL, tau=0.05, lr=1e-3)


pytestmark = pytest.mark.usefixtures("one_thread")


def blind_toy(n_episodes: int = 60, length: int = 10, seed: int = 0) -> tuple[OfflineDataset, object]:
    """The contextual bandit of ``helpers.bandit_dataset``; the agent's copy of the dataset has zero rewards,
    the preferences come from an oracle on the true reward."""
    true = bandit_dataset(n_episodes, length, seed)
    prefs = label_dataset(true, "oracle", 150, segment_length=5, seed=0)
    blind = OfflineDataset(true.observations, true.actions, np.zeros(len(true)), true.terminals, true.timeouts,
                           next_observations=true.next_observations)
    return blind, prefs


@pytest.fixture(scope="module")
def toy():
    return blind_toy()


@pytest.fixture(scope="module")
def reacher():
    ds = collect("mujoco/Reacher-v5", "random", n_steps=600, seed=0)
    return ds, label_dataset(ds, "oracle", 40, segment_length=10, seed=0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------------------------- losses


def test_implicit_reward_is_q_minus_discounted_next_value():
    q = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    nv = torch.tensor([0.5, 1.0, 2.0])
    done = torch.tensor([0.0, 0.0, 1.0])
    r = implicit_reward(q, nv, done, 0.9)
    want = q.numpy() - 0.9 * np.array([0.5, 1.0, 0.0])[None]
    assert r.numpy() == pytest.approx(want)


def test_segment_logits_and_bradley_terry_loss_match_the_equation():
    r_a = torch.tensor([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]])
    r_b = torch.tensor([[0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    label = torch.tensor([1.0, 0.5])
    logits = segment_logits(r_a, r_b)
    assert logits.numpy() == pytest.approx([1.5 - 0.6, 0.0 - 0.5])
    lg = logits.numpy()
    y = label.numpy()
    want = -np.mean(y * np.log(_sigmoid(lg)) + (1 - y) * np.log(_sigmoid(-lg)))
    assert float(bradley_terry_loss(logits, label)) == pytest.approx(want, rel=1e-6)
    # a mask drops steps from the sums
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    assert segment_logits(r_a, r_b, mask, mask).numpy() == pytest.approx([1.0 - 0.3, -0.5])
    # leading dims (critic heads) are averaged in the loss
    two = torch.stack([logits, -logits])
    per_head = [float(bradley_terry_loss(two[i], label)) for i in range(2)]
    assert float(bradley_terry_loss(two, label)) == pytest.approx(np.mean(per_head), rel=1e-6)


def test_chi2_regularizer_is_c_times_mean_square():
    r = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    assert float(chi2_regularizer(r, 0.5)) == pytest.approx(0.5 * (1 + 4 + 0.25 + 0) / 4)


def test_chi2_regularizer_mixes_preference_and_unlabelled_transitions():
    r = torch.tensor([[1.0, -2.0, 3.0], [1.0, 0.0, 1.0]])  # 2 heads, 3 transitions; per transition 1, 2, 5
    got = chi2_regularizer(r, 0.5, n_pref=2, replay_weight=0.25)
    assert float(got) == pytest.approx(0.5 * (0.75 * (1 + 2) / 2 + 0.25 * 5))


def test_training_calls_the_tested_chi2_regularizer(toy, monkeypatch):
    """The critic update goes through :func:`chi2_regularizer` itself (not a copy of its formula)."""
    import pbrl.agents.ipl as ipl_mod

    calls = []

    def spy(r, coeff, n_pref=None, replay_weight=0.5):
        calls.append((tuple(r.shape), coeff, n_pref, replay_weight))
        return 0.0 * r.sum() + 123.0

    ds, prefs = toy
    agent = IPL.from_dataset(ds, **SMALL, segment_crop=4, replay_weight=0.25, chi2_coeff=0.5, seed=0)
    monkeypatch.setattr(ipl_mod, "chi2_regularizer", spy)
    info = agent.fit(ds, prefs, steps=3, progress=False)
    assert len(calls) == 3 and calls[0] == ((2, 128), 0.5, 64, 0.25)
    assert info["losses"]["chi2_loss"] == pytest.approx(123.0)


def test_critic_objective_equals_the_hand_computed_ipl_loss(toy):
    ds, prefs = toy
    agent = IPL.from_dataset(ds, **SMALL, segment_crop=4, replay_weight=0.25, chi2_coeff=0.5, seed=0)
    agent._check_inputs(ds, prefs)
    agent._prepare(ds, prefs)
    flat, p, n_fb, (N, L) = agent._flat_batch(agent._sample())
    assert (N, L) == (8, 4) and n_fb == 64 and len(flat["obs"]) == 64 + 64
    loss, logs = agent._ipl_critic_loss(flat, p, n_fb, (N, L), agent._next_value(flat["next"], p))
    with torch.no_grad():
        qn = agent.nets["q"](flat["obs"], flat["act"]).numpy()  # [2, B]
        nv = agent.nets["v"](flat["next"]).numpy()
    lim = 1 / (0.5 * (1 - 0.99))
    r = qn - 0.99 * (1 - flat["done"].numpy()) * np.clip(nv, -lim, lim)
    ra = r[:, : N * L].reshape(2, N, L) * p["mask_a"].numpy()
    rb = r[:, N * L : n_fb].reshape(2, N, L) * p["mask_b"].numpy()
    logit = rb.sum(-1) - ra.sum(-1)
    y = p["label"].numpy()[None]
    bce = -np.mean(y * np.log(_sigmoid(logit)) + (1 - y) * np.log(_sigmoid(-logit)))
    sq = (r**2).mean(0)
    chi2 = 0.5 * (0.75 * sq[:n_fb].mean() + 0.25 * sq[n_fb:].mean())
    assert float(loss) == pytest.approx(bce + chi2, rel=1e-5)
    assert float(logs["pref_loss"]) == pytest.approx(bce, rel=1e-5)
    assert float(logs["chi2_loss"]) == pytest.approx(chi2, rel=1e-5)
    assert math.isfinite(float(logs["pref_accuracy"]))


# ---------------------------------------------------------------------------------------------- learning


def _mean_action(agent, n: int = 200) -> float:
    obs = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
    return float(agent.predict(obs)[0].mean())


@pytest.mark.parametrize("cls", [IPL, IPLAWAC])
def test_ipl_learns_the_preferred_action_without_any_reward(toy, cls):
    ds, prefs = toy
    kw = dict(FAST, hidden=(32, 32), segment_crop=None, beta=10.0)
    agent = cls.from_dataset(ds, **kw, seed=0)
    info = agent.fit(ds, prefs, steps=250, progress=False)
    assert info["losses"]["pref_accuracy"] > 0.7  # of the last 10 % of minibatches (IPL ~0.9, AWAC ~0.78)
    # the implicit reward ranks the preferred action higher
    obs = torch.zeros(1, 3)
    with torch.no_grad():
        q_good = agent.nets["q"](obs, torch.full((1, 1), 0.8)).mean()
        q_bad = agent.nets["q"](obs, torch.full((1, 1), -0.8)).mean()
    assert q_good > q_bad
    assert _mean_action(agent) > 0.4


def test_ipl_fits_real_data_and_works_with_sb3_evaluate_policy_and_save_load(tmp_path, reacher):
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from pbrl.envs import make_env

    ds, prefs = reacher
    for cls in (IPL, IPLAWAC):
        agent = cls.from_dataset(ds, **SMALL, seed=1)
        info = agent.fit(ds, prefs, steps=100, eval_env="mujoco/Reacher-v5", eval_every=100, n_eval_episodes=1,
                         progress=False)
        assert info["final_eval"]["step"] == 100 and np.isfinite(info["losses"]["pref_loss"])
        mean, _ = evaluate_policy(agent, Monitor(make_env("mujoco/Reacher-v5", seed=0)), n_eval_episodes=2)
        assert np.isfinite(mean)
        back = cls.load(agent.save(tmp_path / f"{cls.__name__}.pt"))
        assert type(back) is cls and back.config == agent.config
        assert np.array_equal(back.predict(ds.observations[:10])[0], agent.predict(ds.observations[:10])[0])
    assert "v" not in agent.nets  # the AWAC variant has no value network


def test_ipl_bad_input(toy, reacher):
    ds, prefs = toy
    _, rprefs = reacher
    agent = IPL.from_dataset(ds, **SMALL)
    with pytest.raises(ValueError, match="learns from preferences"):
        agent.fit(ds, None, steps=10)
    with pytest.raises(ValueError, match="obs_dim=10"):
        agent.fit(ds, rprefs, steps=10)
    with pytest.raises(ValueError, match="chi2_coeff"):
        IPL(3, 1, chi2_coeff=-1)
    with pytest.raises(ValueError, match="segment_crop"):
        IPL(3, 1, segment_crop=0)
    assert agent.num_updates == 0


def _terminal_toy():
    """A toy whose preference segments end in terminal steps (every episode ends in a fall)."""
    rng = np.random.default_rng(0)
    n, ep = 240, 12
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    rew = rng.normal(size=n).astype(np.float32)
    term = np.zeros(n, bool)
    term[ep - 1 :: ep] = True
    ds = OfflineDataset(obs, act, rew, term, np.zeros(n, bool), next_observations=np.roll(obs, -1, 0))
    prefs = label_dataset(ds, "oracle", 16, segment_length=ep, seed=0)
    blind = OfflineDataset(obs, act, np.zeros(n, np.float32), term, np.zeros(n, bool), next_observations=ds.next_observations)
    return blind, prefs


@pytest.mark.parametrize("mask", [False, True])
def test_segment_terminals_are_masked_only_when_asked(mask):
    """The authors' IPL keeps ``gamma V(s')`` at a terminal step inside a preference segment (one constant discount
    per feedback segment); pbrl masked it, making a fall step's implicit reward ``Q(s, a)``. Unlabelled
    transitions mask terminals either way."""
    ds, prefs = _terminal_toy()
    agent = IPL.from_dataset(ds, **SMALL, segment_crop=None, seed=0, mask_segment_terminals=mask)
    agent._check_inputs(ds, prefs)
    agent._prepare(ds, prefs)
    batch = agent._sample()
    assert float(batch["done_a"].sum() + batch["done_b"].sum()) > 0  # the segments do hold terminal steps
    flat, p, n_fb, _ = agent._flat_batch(batch)
    seg_done = torch.cat([batch["done_a"].reshape(-1), batch["done_b"].reshape(-1)])
    assert torch.equal(flat["done"][:n_fb], seg_done if mask else torch.zeros_like(seg_done))
    assert torch.equal(flat["done"][n_fb:], batch["replay_dones"])
    assert agent.config["mask_segment_terminals"] is mask
