"""CPL: the loss against hand-computed values, learning the known preferred action, fit/predict/save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import contrast_problem

from pbrl.agents.cpl import CPL, CPLBC, bc_nll, cpl_loss, cpl_segment_scores
from pbrl.envs.datasets import OfflineDataset
from pbrl.preferences import PreferenceDataset
from pbrl.segments import Segments

# test-sized: small nets and batches; no BC phase and no lr warmup unless a test asks (the defaults are the
# authors' 500k-update recipe, see test_defaults_are_the_authors_state_based_recipe)
SMALL = dict(hidden=(32, 32), pair_batch_size=16, bc_steps=0, lr_warmup=0)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------- losses


def test_segment_scores_match_hand_computation():
    lp = torch.tensor([[-1.0, -2.0, -3.0], [0.5, 0.0, 1.0]])
    got = cpl_segment_scores(lp, alpha=0.1, discount=0.9)
    want = [0.1 * (-1.0 + 0.9 * -2.0 + 0.81 * -3.0), 0.1 * (0.5 + 0.0 + 0.81 * 1.0)]
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    # undiscounted (the default) is a plain sum; a mask drops steps
    assert cpl_segment_scores(lp, alpha=0.1).tolist() == pytest.approx([-0.6, 0.15], abs=1e-6)
    masked = cpl_segment_scores(lp, alpha=1.0, mask=torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    assert masked.tolist() == pytest.approx([-3.0, 1.0], abs=1e-6)


def test_conservative_cpl_loss_matches_equation():
    s_a = torch.tensor([1.0, 1.0, 2.0])
    s_b = torch.tensor([2.0, 1.0, -1.0])
    label = torch.tensor([1.0, 0.0, 0.5])
    lam = 0.5

    def nll(pos, neg):  # -log exp(S+) / (exp(S+) + exp(lambda S-))
        return -math.log(math.exp(pos) / (math.exp(pos) + math.exp(lam * neg)))

    per_pair = [nll(2.0, 1.0), nll(1.0, 1.0), 0.5 * nll(-1.0, 2.0) + 0.5 * nll(2.0, -1.0)]
    got = cpl_loss(s_a, s_b, label, bias=lam)
    assert float(got) == pytest.approx(sum(per_pair) / 3, rel=1e-6)


def test_cpl_loss_with_bias_one_is_bradley_terry():
    g = torch.Generator().manual_seed(0)
    s_a, s_b = torch.randn(20, generator=g), torch.randn(20, generator=g)
    label = (torch.rand(20, generator=g) > 0.5).float()
    bt = torch.nn.functional.binary_cross_entropy_with_logits(s_b - s_a, label)
    assert float(cpl_loss(s_a, s_b, label, bias=1.0)) == pytest.approx(float(bt), rel=1e-5)
    # the conservative bias changes the value: it is not silently ignored
    assert float(cpl_loss(s_a, s_b, label, bias=0.5)) != pytest.approx(float(bt), rel=1e-3)


def test_bc_nll_weighted_by_preference():
    lp = torch.tensor([[-1.0, -3.0], [-4.0, -6.0]])  # row means -2, -5
    assert float(bc_nll(lp)) == pytest.approx(3.5)
    assert float(bc_nll(lp, torch.tensor([1.0, 0.0]))) == pytest.approx(2.0)
    assert float(bc_nll(lp, torch.tensor([0.5, 0.5]))) == pytest.approx(3.5)


# ---------------------------------------------------------------------------------------------- toy problem


def toy_problem(n_pairs: int = 64, H: int = 8, good: float = 0.6, seed: int = 0):
    """Segments with action ``+good`` (preferred) vs ``-good``, random states; returns (dataset, prefs)."""
    ds, prefs, *_ = contrast_problem(n_pairs, H, good=good, noise=0.1, seed=seed)
    return ds, prefs


def test_cpl_learns_the_preferred_action():
    ds, prefs = toy_problem()
    probe = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    agent = CPL.from_dataset(ds, seed=0, lr=1e-3, policy="gaussian", **SMALL)
    before, _ = agent.predict(probe)
    info = agent.fit(ds, prefs, steps=300, progress=False)
    after, _ = agent.predict(probe)
    assert info["losses"]["accuracy"] > 0.9
    assert after.mean() > 0.3 > abs(before.mean())
    # the same data with every label flipped teaches the opposite action
    agent_flipped = CPL.from_dataset(ds, seed=0, lr=1e-3, policy="gaussian", **SMALL)
    swapped = PreferenceDataset(prefs.a, prefs.b, 1.0 - prefs.label)
    agent_flipped.fit(ds, swapped, steps=300, progress=False)
    assert agent_flipped.predict(probe)[0].mean() < -0.3


def test_bc_pretraining_then_cpl_and_cplbc():
    ds, prefs = toy_problem()
    agent = CPL.from_dataset(ds, seed=0, lr=1e-3, **{**SMALL, "bc_steps": 50})
    seen = []
    agent.fit(ds, prefs, steps=60, progress=False, callback=lambda ag, step, losses: seen.append(set(losses)))
    assert all("cpl_loss" not in s for s in seen[:50]) and all("cpl_loss" in s for s in seen[50:])
    assert (CPLBC(3, 1).bc_coeff, CPLBC(3, 1).bias, CPLBC(3, 1).bc_data) == (1.0, 1.0, "segments")
    # BC on balanced data alone leaves the mean action near zero; CPL-BC still prefers the good action
    bc = CPLBC.from_dataset(ds, seed=0, lr=1e-3, bc_data="preferred", **SMALL)
    bc.fit(ds, prefs, steps=300, progress=False)
    probe = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    assert bc.predict(probe)[0].mean() > 0.3


def test_deterministic_policy_log_prob_is_negative_squared_error_and_learns():
    from pbrl.agents.networks import DeterministicPolicy

    torch.manual_seed(0)
    pi = DeterministicPolicy(3, 2, hidden=(8,))
    obs, act = torch.randn(4, 5, 3), torch.rand(4, 5, 2) * 2 - 1
    want = -((pi(obs) - act) ** 2).sum(-1)
    torch.testing.assert_close(pi.log_prob(obs, act), want)
    assert pi.log_prob(obs, act).shape == (4, 5)
    with pytest.raises(ValueError, match="policy must be one of"):
        CPL(3, 1, policy="beta")
    # the deterministic form orders the toy preferences too, and both label orders teach opposite actions
    ds, prefs = toy_problem()
    probe = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    agent = CPL.from_dataset(ds, seed=0, lr=1e-3, policy="deterministic", **SMALL)
    info = agent.fit(ds, prefs, steps=300, progress=False)
    assert info["losses"]["accuracy"] > 0.9 and agent.predict(probe)[0].mean() > 0.3
    flipped = CPL.from_dataset(ds, seed=0, lr=1e-3, policy="deterministic", **SMALL)
    flipped.fit(ds, PreferenceDataset(prefs.a, prefs.b, 1.0 - prefs.label), steps=300, progress=False)
    assert flipped.predict(probe)[0].mean() < -0.3


def test_defaults_are_the_authors_state_based_recipe():
    """``CPL()`` is configs/mw_state_*/cpl.yaml of Hejna et al.'s code; ``CPLBC()`` is their cpl_bc.yaml."""
    from pbrl.agents.networks import DeterministicPolicy

    a = CPL(3, 2)
    assert isinstance(a.nets["policy"], DeterministicPolicy) and a.hidden == (512, 512) and a.lr == 1e-4
    assert (a.alpha, a.bias, a.discount, a.bc_coeff, a.bc_data) == (0.1, 0.5, 1.0, 0.0, "segments")
    assert (a.pair_batch_size, a.dropout, a.ortho_init, a.lr_warmup, a.bc_fraction) == (96, 0.25, True, 10_000, 0.4)
    w = a.nets["policy"].net[0].weight.detach()  # orthogonal init: orthonormal columns (3 inputs, 512 units)
    torch.testing.assert_close(w.T @ w, torch.eye(3), atol=1e-5, rtol=0)
    assert float(a.nets["policy"].net[0].bias.abs().max()) == 0.0
    b = CPLBC(3, 2)
    assert (b.bias, b.bc_coeff, b.bc_data, b.alpha, b.lr, b.hidden) == (1.0, 1.0, "segments", 0.1, 1e-4, (512, 512))
    # the BC phase is 40 % of the first fit; the CPL phase's lr then warms up linearly from 0
    ds, prefs = toy_problem(n_pairs=8)
    ag = CPL.from_dataset(ds, hidden=(8,), pair_batch_size=4, lr_warmup=100)
    lrs = []
    ag.fit(ds, prefs, steps=10, progress=False, callback=lambda g, step, _: lrs.append(g.optims["policy"].param_groups[0]["lr"]))
    assert ag.bc_updates == 4 and lrs[:3] == [1e-4] * 3
    assert [ag.cpl_lr(k) for k in (3, 4, 5, 104, 500)] == pytest.approx([1e-4, 0.0, 1e-6, 1e-4, 1e-4])


def test_optimiser_is_reset_when_the_cpl_phase_starts():
    ds, prefs = toy_problem()
    agent = CPL.from_dataset(ds, seed=0, lr=1e-3, **{**SMALL, "bc_steps": 20})
    opts = []
    agent.fit(ds, prefs, steps=25, progress=False, callback=lambda ag, step, losses: opts.append(ag.optims["policy"]))
    assert all(o is opts[0] for o in opts[:19]) and all(o is opts[19] for o in opts[19:]) and opts[19] is not opts[0]
    assert agent.optims["policy"].state_dict()["state"][0]["step"] == 5  # only the 5 CPL steps are in the new Adam


# ---------------------------------------------------------------------------------------------- live task


@pytest.fixture(scope="module")
def reach():
    from pbrl.envs.datasets import collect, label_dataset

    ds = collect("metaworld/reach-v3", policy="scripted", n_steps=1000, seed=0, noise=[0.0, 1.0])
    return ds, label_dataset(ds, "oracle", 64, segment_length=10, seed=0)


def test_fit_predict_evaluate_policy_and_save_load(reach, tmp_path):
    from stable_baselines3.common.evaluation import evaluate_policy

    from pbrl.envs import make_env

    ds, prefs = reach
    agent = CPLBC.from_dataset(ds, seed=3, **SMALL)
    info = agent.fit(ds, prefs, steps=200, progress=False)
    assert info["num_updates"] == 200 and np.isfinite(info["losses"]["cpl_loss"])
    env = make_env("metaworld/reach-v3", seed=0)
    mean, std = evaluate_policy(agent, env, n_eval_episodes=1)
    assert np.isfinite(mean)
    obs = ds.observations[:50]
    act, state = agent.predict(obs)
    assert state is None and act.shape == (50, 4) and np.all(np.abs(act) <= 1.0)
    agent.save(tmp_path / "cpl.pt")
    loaded = CPLBC.load(tmp_path / "cpl.pt")
    assert type(loaded) is CPLBC and loaded.bias == 1.0 and loaded.alpha == 0.1
    np.testing.assert_array_equal(loaded.predict(obs)[0], act)
    np.testing.assert_array_equal(loaded.predict(obs[0])[0], agent.predict(obs[0])[0])


def test_same_seed_same_policy():
    ds, prefs = toy_problem(n_pairs=16)
    probe = np.random.default_rng(2).normal(size=(8, 3)).astype(np.float32)
    runs = []
    for _ in range(2):
        ag = CPL.from_dataset(ds, seed=7, **SMALL)
        ag.fit(ds, prefs, steps=20, progress=False)
        runs.append(ag.predict(probe)[0])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_bad_input_fails_before_work():
    ds, prefs = toy_problem(n_pairs=4)
    with pytest.raises(ValueError, match="bias"):
        CPL(3, 1, bias=0.0)
    with pytest.raises(ValueError, match="bc_data"):
        CPL(3, 1, bc_data="everything")
    with pytest.raises(ValueError, match="alpha"):
        CPL(3, 1, alpha=-1.0)
    agent = CPL.from_dataset(ds, **SMALL)
    equal = PreferenceDataset(prefs.a, prefs.b, np.full(len(prefs), 0.5, np.float32))
    with pytest.raises(ValueError, match="0.5"):
        agent.fit(ds, equal, steps=5, progress=False)
    with pytest.raises(ValueError, match="PreferenceDataset"):
        agent.fit(ds, None, steps=5, progress=False)
    assert agent.num_updates == 0


# ---------------------------------------------------------------------------------------------- sparse labels


def segments_only_problem(n_pairs: int = 4, H: int = 50, seed: int = 0):
    """A dataset made of the labelled segments alone: the dispreferred behaviour (a noisy version of the same
    action, 0.3) visits states that no preferred segment visits (obs[0] shifted by 4)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(2 * n_pairs, H, 3)).astype(np.float32)
    bad = np.arange(2 * n_pairs) >= n_pairs
    obs[bad, :, 0] += 4.0
    scale = np.where(bad, 0.5, 0.1)[:, None, None]
    act = np.clip(0.3 + scale * rng.normal(size=(2 * n_pairs, H, 2)), -1, 1).astype(np.float32)
    T = 2 * n_pairs * H
    timeouts = np.zeros(T, bool)
    timeouts[H - 1 :: H] = True
    ds = OfflineDataset(obs.reshape(-1, 3), act.reshape(-1, 2), np.zeros(T, np.float32), np.zeros(T, bool), timeouts)
    segs = Segments(obs=obs, act=act, reward=np.zeros((2 * n_pairs, H), np.float32), index=np.arange(2 * n_pairs) * H)
    prefs = PreferenceDataset(segs[bad], segs[~bad], np.ones(n_pairs, np.float32))  # b (the quiet one) preferred
    return ds, prefs, obs[bad].reshape(-1, 3)


def test_sparse_hard_labels_push_dispreferred_states_to_the_bounds_and_smoothing_stops_it():
    """The collapse mechanism and its fix: with hard 0/1 targets the loss has its optimum at an infinite
    score gap, so at states seen only in dispreferred segments the tanh policy is pushed to the action
    bounds; the default smoothed targets give a finite optimum and the actions stay inside."""
    ds, prefs, bad_obs = segments_only_problem()
    kw = dict(hidden=(32, 32), pair_batch_size=4, bc_steps=200, lr_warmup=0, lr=1e-3, dropout=0.0, seed=0)
    results = {}
    for eps in (0.0, None):  # None: the default
        agent = CPL.from_dataset(ds, **kw, **({} if eps is None else {"label_smoothing": eps}))
        agent.fit(ds, prefs, steps=2000, progress=False)
        act = agent.predict(bad_obs)[0]
        results[eps] = (float((np.abs(act) > 0.98).mean()), float(((act - 0.3) ** 2).sum(-1).mean()))
    assert CPL(3, 2).label_smoothing == 0.05
    hard_saturated, hard_dist = results[0.0]
    soft_saturated, soft_dist = results[None]
    assert hard_saturated > 0.8 and hard_dist > 0.8  # the authors' hard targets: at the bounds, far from 0.3
    assert soft_saturated < 0.05 and soft_dist < 0.5 * hard_dist


def test_smoothed_targets_have_a_finite_optimum():
    from pbrl.agents.cpl import smooth_labels

    label = torch.tensor([1.0, 0.0, 0.5])
    assert smooth_labels(label, 0.05).tolist() == pytest.approx([0.95, 0.05, 0.5])
    assert smooth_labels(label, 0.0) is label
    # lambda = 1: the loss is minimised at the gap log(0.95 / 0.05), and beyond it the gradient turns back
    gap = torch.linspace(0.0, 8.0, 801, requires_grad=True)
    loss = cpl_loss(torch.zeros(801), gap, smooth_labels(torch.ones(801), 0.05), bias=1.0)
    (g,) = torch.autograd.grad(loss, gap)
    best = float(gap[int(torch.argmin(torch.abs(g)))])
    assert best == pytest.approx(math.log(0.95 / 0.05), abs=0.02)
    hard = cpl_loss(torch.zeros(801), gap, torch.ones(801), bias=1.0)
    (gh,) = torch.autograd.grad(hard, gap)
    assert bool((gh < 0).all())  # hard targets: the loss falls all the way, no finite optimum
